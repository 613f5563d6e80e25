"""`diffprune export PRUNED --out FOLDER`: rewrite a pruned pipeline with a stock diffusers UNet class, where
the removed units can be said in a plain config (see diffprune/export.py); loads without diffprune."""

from __future__ import annotations

from diffprune.errors import DiffpruneError
from diffprune.outputs import check_new_output


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="save a pruned pipeline with a stock diffusers UNet (where expressible)"
    )
    parser.add_argument("model", help="a pruned pipeline folder")
    parser.add_argument("--out", required=True, help="output folder (must be new)")
    parser.set_defaults(run=run)


def run(args) -> int:
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.models.components import with_unet
    from diffprune.models.loading import load_pipeline
    from diffprune.models.saved_folder import pruning_report_of, save_pruned_folder
    from diffprune.structure.export import export_plain

    out = check_new_output(args.out)
    pipeline = load_pipeline(args.model)
    if getattr(pipeline, "unet", None) is None:
        raise DiffpruneError(
            f"{args.model}'s denoiser is a transformer: its depth cuts are stock diffusers already, and no stock "
            "config drops a branch inside a block (load such a cut with trust_remote_code=True)"
        )
    if not (pipeline.unet.config.get("removed_units") or {}):
        raise DiffpruneError(f"{args.model} has no removed units; it is a plain diffusers pipeline already")
    plain = with_unet(pipeline, export_plain(pipeline.unet))
    save_pruned_folder(out, plain, pruning_report_of(args.model, pipeline.unet))
    print(f"saved a stock diffusers pipeline to {out}")
    return 0
