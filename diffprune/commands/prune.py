"""`diffprune prune MODEL --method ld-pruner --keep-macs 0.7 --out FOLDER`."""

from __future__ import annotations

from pathlib import Path

from .device_options import add_device_options, device_and_dtype_from_args


def add_calibration_arguments(parser) -> None:
    group = parser.add_argument_group("calibration")
    group.add_argument("--num-samples", type=int, default=32, help="calibration samples (default 32)")
    group.add_argument("--inference-steps", type=int, default=20, help="denoising steps per sample (default 20)")
    group.add_argument("--seed", type=int, default=0, help="first seed; sample i uses seed + i")
    group.add_argument(
        "--prompts",
        help="text-to-image: prompt file, one per line (default: the model folder's "
        "calibration_prompts.txt, else assets/prompts/calibration.txt)",
    )
    group.add_argument("--guidance-scale", type=float, default=None, help="text-to-image guidance (default 7.5)")
    group.add_argument(
        "--images",
        help="folder of training images (+ captions.txt for text-to-image) for loss-based "
        "criteria and distillation; default: data-free (the original's own samples)",
    )


def register(subparsers) -> None:
    from ..criteria import available_criteria

    methods = available_criteria()
    parser = subparsers.add_parser(
        "prune",
        help="score units, select under a budget, cut them, save a pipeline that reloads with diffusers",
        description=f"Criteria (--method): {', '.join(methods)}.",
    )
    parser.add_argument("model", help="pipeline folder, hub id, or bundled name (digits-t2i, digits-ddpm, tones-audio)")
    parser.add_argument(
        "--method",
        default="ld-pruner",
        choices=methods,
        metavar="METHOD",
        help=f"scoring criterion: {', '.join(methods)} (default ld-pruner)",
    )
    budget = parser.add_argument_group("budget (one of; default --keep-macs 0.7)")
    budget.add_argument("--keep-macs", type=float, help="fraction of UNet MACs to keep")
    budget.add_argument("--keep-params", type=float, help="fraction of UNet parameters to keep")
    budget.add_argument("--num-units", type=int, help="number of units to remove")
    parser.add_argument("--rounds", type=int, default=1, help="progressive pruning: re-score after each of K slices")
    parser.add_argument("--kinds", help="comma-separated unit kinds that may be removed (default: all)")
    parser.add_argument(
        "--ranking",
        default="score",
        choices=["score", "score-per-cost"],
        help="remove lowest scores first (default), or lowest score per MAC/param saved first",
    )
    parser.add_argument("--variants-per-batch", type=int, default=8, help="candidates scored together in one batch")
    parser.add_argument("--out", required=True, help="output folder (must be new; rerun the same command to resume)")
    add_calibration_arguments(parser)
    add_device_options(
        parser, dtype_help="precision of scoring (default: the model's own); the saved cut keeps the model's precision"
    )
    parser.set_defaults(run=run)


def calibration_from_args(args, pipeline):
    from ..adapters import CalibrationSettings
    from ..prompts import default_prompts, read_prompts

    prompts = read_prompts(args.prompts) if args.prompts else default_prompts(pipeline)
    return CalibrationSettings(
        num_samples=args.num_samples,
        num_inference_steps=args.inference_steps,
        seed=args.seed,
        prompts=prompts,
        guidance_scale=args.guidance_scale,
        images=args.images,
    )


def run(args) -> int:
    from ..loading import load_pipeline
    from ..outputs import check_new_output
    from ..pruning import WORK_FOLDER, prune

    device, _ = device_and_dtype_from_args(args)
    out = check_new_output(args.out, allowed=(WORK_FOLDER,))
    pipeline = load_pipeline(args.model, device=device)
    result = prune(
        pipeline,
        method=args.method,
        keep_macs=args.keep_macs,
        keep_params=args.keep_params,
        num_units=args.num_units,
        rounds=args.rounds,
        calibration=calibration_from_args(args, pipeline),
        work_dir=Path(out) / WORK_FOLDER,
        variants_per_batch=args.variants_per_batch,
        kinds=args.kinds.split(",") if args.kinds else None,
        ranking=args.ranking,
        source=args.model,
        dtype=args.dtype,
    )
    result.save(out)
    from ..distributed import is_main_process

    if is_main_process():
        print_summary(result.report)
        print(f"saved to {out} (pipeline, pruning_report.json, README.md, scores.png)")
    return 0


def print_summary(report: dict) -> None:
    before, after = report["totals_before"], report["totals_after"]
    print(f"removed {len(report['removed_units'])} units ({report['budget']}):")
    for name in report["removed_units"]:
        print(f"  - {name}")
    print(f"UNet params: {before['params']:,} -> {after['params']:,} ({after['params'] / before['params']:.1%})")
    print(f"UNet MACs:   {before['macs']:,} -> {after['macs']:,} ({after['macs'] / before['macs']:.1%})")
