"""The `diffprune` command line. Each subcommand lives in diffprune/commands/; user errors exit with code 2."""

from __future__ import annotations

import argparse
import sys

from .errors import DiffpruneError


def build_parser() -> argparse.ArgumentParser:
    from .commands import register_all

    parser = argparse.ArgumentParser(
        prog="diffprune",
        description="Prune diffusion UNets (LD-Pruner, gradient flow, baselines), cut them for real, evaluate.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_all(subparsers)
    return parser


def _quiet_libraries() -> None:
    """Library chatter (missing torchvision, deprecations) would bury our one-line messages."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # "Loading pipeline components" on every load


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except DiffpruneError as error:
        print(f"diffprune: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("diffprune: interrupted; rerun the same command to resume where supported", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
