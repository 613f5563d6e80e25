"""One module per subcommand; each exposes `register(subparsers)` and sets `run` on its parser."""

from importlib import import_module

COMMANDS = ["units", "prune", "eval", "compare", "distill", "demo", "export", "lora"]


def register_all(subparsers) -> None:
    for name in COMMANDS:
        import_module(f".{name}", __name__).register(subparsers)
