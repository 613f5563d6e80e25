"""The `diffprune` command line: one module per subcommand in this folder, each exposing `register(subparsers)`
and setting `run` on its parser; user errors exit with code 2.

May import anything in diffprune; nothing in diffprune imports the CLI.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from importlib import import_module

from diffprune.distributed import end_processes
from diffprune.errors import DiffpruneError

COMMANDS = ["units", "prune", "eval", "compare", "distill", "demo", "export", "lora"]


def register_all(subparsers) -> None:
    for name in COMMANDS:
        import_module(f".{name}", __name__).register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffprune",
        description="Prune diffusion UNets (LD-Pruner, gradient flow, baselines), cut them for real, evaluate.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_all(subparsers)
    return parser


def quiet_libraries() -> None:
    """Library chatter (missing torchvision, deprecations) would bury our one-line messages."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # after the variables above, which diffusers reads when first imported; and `--help` never loads it
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # "Loading pipeline components" on every load
    diffusers_logging.set_verbosity_error()  # also when diffusers was imported before the variable was set


# Library errors name arguments in backticks (`num_inference_steps`); the CLI says the flag instead. Names that
# differ from their flag are listed; any other `name` becomes --name-with-dashes when some command has that flag.
FLAG_FOR_ARGUMENT = {
    "num_inference_steps": "--inference-steps",
    "generation_batch_size": "--batch-size",
    "latency.batch_size": "--latency-batch-size",
    "latency.runs": "--latency-runs",
    "latency.warmup": "--latency-warmup",
    "latency.num_inference_steps": "--inference-steps",
    "reference": "--reference",
}


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every flag of a parser and of its subcommands' parsers."""
    flags = {option for action in parser._actions for option in action.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                flags |= option_strings(subparser)
    return flags


def as_cli_message(message: str, flags: set[str], renamed: dict[str, str] = FLAG_FOR_ARGUMENT) -> str:
    """A library error as a command line's: each `argument` becomes its flag (`renamed`, else --argument-name
    when `flags` has it), any other name loses its backticks."""

    def flag(match: re.Match) -> str:
        name = match.group(1)
        dashed = "--" + name.replace("_", "-")
        return renamed.get(name) or (dashed if dashed in flags else name)

    return re.sub(r"`([A-Za-z_][\w.]*)`", flag, message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # --help and usage errors exit here, before any model library loads
    quiet_libraries()

    finished = False
    try:
        code = args.run(args) or 0
        finished = True
        return code
    except DiffpruneError as error:
        print(f"diffprune: error: {as_cli_message(str(error), option_strings(parser))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("diffprune: interrupted; rerun the same command to resume where supported", file=sys.stderr)
        return 130
    finally:
        end_processes(finished)  # under `accelerate launch`: the group goes before the interpreter does


if __name__ == "__main__":
    sys.exit(main())
