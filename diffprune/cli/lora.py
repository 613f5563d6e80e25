"""`diffprune lora LORA --pruned FOLDER --out FILE`: adapt a LoRA made for the original model to a cut."""

from __future__ import annotations

from pathlib import Path

from diffprune.errors import DiffpruneError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lora",
        help="adapt a LoRA made for the original model to a pruned pipeline (drops keys of removed units)",
    )
    parser.add_argument("lora", help="the LoRA (.safetensors) made for the original model")
    parser.add_argument("--pruned", required=True, help="the pruned pipeline folder (from `diffprune prune`)")
    parser.add_argument("--out", required=True, help="the adapted LoRA file to write (.safetensors; must be new)")
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.recovery.lora import adapt_lora

    out = Path(args.out)
    if out.exists():
        raise DiffpruneError(f"{out} already exists; choose a new --out file or delete it")
    if not out.parent.is_dir():
        raise DiffpruneError(f"{out.parent} is not a folder; create it first")
    adapted = adapt_lora(args.lora, args.pruned)
    adapted.save(out)
    print(f"{adapted.describe()}; saved to {out}")
    return 0
