"""`diffprune prune MODEL --criterion ld-pruner --keep-macs 0.7 --out FOLDER`."""

from __future__ import annotations

from pathlib import Path

from diffprune.cli.device_options import add_device_options, device_and_dtype_from_args
from diffprune.criteria import available_criteria, get_criterion, parse_option_values
from diffprune.distributed import is_main_process
from diffprune.errors import DiffpruneError
from diffprune.models import zoo
from diffprune.outputs import WORK_FOLDER, check_new_output
from diffprune.structure.selection import DEFAULT_BUDGET, Budget


def add_criterion_arguments(parser) -> None:
    criteria = available_criteria()
    group = parser.add_argument_group("criterion")
    group.add_argument(
        "--criterion",
        "--method",
        dest="criterion",
        default="ld-pruner",
        metavar="CRITERION",
        help=f"scoring criterion: {', '.join(criteria)} (default: %(default)s)",
    )
    group.add_argument(
        "--criterion-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the criterion, repeatable (e.g. statistic=paired for ld-pruner, steps=30 for gradflow, "
        "objective=denoising-loss for gradflow, taylor and output-loss)",
    )


def add_budget_arguments(parser, default_keep_macs: float = DEFAULT_BUDGET.keep_macs) -> None:
    """--keep-macs, --keep-params, --num-units; budget_from_args reads them with the same default."""
    group = parser.add_argument_group(f"budget (one of; default --keep-macs {default_keep_macs})")
    group.add_argument(
        "--keep-macs", type=float, help="fraction of the denoiser's (UNet's or transformer's) MACs to keep"
    )
    group.add_argument("--keep-params", type=float, help="fraction of the denoiser's parameters to keep")
    group.add_argument("--num-units", type=int, help="number of units to remove")


def add_selection_arguments(parser) -> None:
    group = parser.add_argument_group("scoring and selection")
    group.add_argument(
        "--variants-per-batch",
        type=int,
        default=8,
        help="candidate cuts scored together in one batch (default: %(default)s)",
    )
    group.add_argument("--rounds", type=int, default=1, help="progressive pruning: re-score after each of K slices")
    group.add_argument(
        "--kinds",
        help="comma-separated unit kinds that may be removed (default: all; `diffprune units MODEL` lists them)",
    )
    group.add_argument(
        "--ranking",
        default="score",
        choices=["score", "score-per-cost"],
        help="remove lowest scores first (default), or lowest score per MAC/param saved first",
    )


def add_calibration_arguments(parser) -> None:
    group = parser.add_argument_group("calibration")
    group.add_argument("--num-samples", type=int, default=32, help="calibration samples (default: %(default)s)")
    group.add_argument(
        "--inference-steps", type=int, default=20, help="denoising steps per sample (default: %(default)s)"
    )
    group.add_argument("--seed", type=int, default=0, help="first seed; sample i uses seed + i")
    group.add_argument(
        "--prompts",
        help="text-to-image: prompt file, one per line (default: the model folder's "
        "calibration_prompts.txt, else assets/prompts/calibration.txt)",
    )
    group.add_argument(
        "--guidance-scale", type=float, default=None, help="text-to-image guidance (default: the pipeline's own)"
    )
    group.add_argument(
        "--images",
        help="folder of training images (+ captions.txt for text-to-image) for loss-based "
        "criteria and distillation; default: data-free (the original's own samples)",
    )
    group.add_argument(
        "--max-batch",
        type=int,
        help="samples x candidate cuts per denoiser call while scoring, at least --variants-per-batch; lower both "
        "if memory runs out (default: %(default)s; unset: CalibrationSettings.max_batch)",
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prune",
        help="score units, select under a budget, cut them, save a pipeline that reloads with diffusers",
        description=f"Criteria (--criterion): {', '.join(available_criteria())}.",
    )
    parser.add_argument("model", help=f"pipeline folder, hub id, or bundled name ({', '.join(zoo.PIPELINES)})")
    parser.add_argument("--out", required=True, help="output folder (must be new; rerun the same command to resume)")
    add_criterion_arguments(parser)
    add_budget_arguments(parser)
    add_selection_arguments(parser)
    add_calibration_arguments(parser)
    add_device_options(
        parser, dtype_help="precision of scoring (default: the model's own); the saved cut keeps the model's precision"
    )
    parser.set_defaults(run=run)


def criterion_from_args(args):
    return get_criterion(args.criterion, **parse_option_values(args.criterion, args.criterion_option))


def budget_from_args(args, default_keep_macs: float = DEFAULT_BUDGET.keep_macs):
    if args.keep_macs is None and args.keep_params is None and args.num_units is None:
        return Budget(keep_macs=default_keep_macs)
    return Budget(keep_macs=args.keep_macs, keep_params=args.keep_params, num_units=args.num_units)


def kinds_filter(kinds: str | None):
    """--kinds a,b -> a unit filter that keeps units of those kinds (None: every unit)."""
    if not kinds:
        return None
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.structure.units import UNIT_KINDS

    wanted = set(kinds.split(","))
    unknown = wanted - set(UNIT_KINDS)
    if unknown:
        raise DiffpruneError(
            f"unknown unit kind {', '.join(sorted(unknown))} in --kinds; kinds: {', '.join(UNIT_KINDS)}"
        )
    return lambda unit: unit.kind in wanted


def calibration_from_args(args, pipeline):
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.models.adapters import CalibrationSettings
    from diffprune.models.prompts import default_prompts, read_prompts

    prompts = read_prompts(args.prompts) if args.prompts else default_prompts(pipeline)
    return CalibrationSettings(
        num_samples=args.num_samples,
        num_inference_steps=args.inference_steps,
        seed=args.seed,
        prompts=prompts,
        guidance_scale=args.guidance_scale,
        images=args.images,
        **({"max_batch": args.max_batch} if args.max_batch is not None else {}),
    )


def run(args) -> int:
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.models.loading import load_pipeline
    from diffprune.pruning.prune import prune

    # checked before the model loads: a typo costs seconds
    device, _ = device_and_dtype_from_args(args)
    out = check_new_output(args.out, allowed=(WORK_FOLDER,))
    criterion, budget, unit_filter = criterion_from_args(args), budget_from_args(args), kinds_filter(args.kinds)
    pipeline = load_pipeline(args.model, device=device)
    result = prune(
        pipeline,
        criterion,
        budget,
        unit_filter=unit_filter,
        rounds=args.rounds,
        calibration=calibration_from_args(args, pipeline),
        work_dir=Path(out) / WORK_FOLDER,
        variants_per_batch=args.variants_per_batch,
        ranking=args.ranking,
        source=args.model,
        dtype=args.dtype,
    )
    result.save(out)

    if is_main_process():
        print_summary(result.report)
        print(f"saved to {out} (pipeline, pruning_report.json, README.md, scores.png)")
    return 0


def print_summary(report: dict) -> None:
    before, after = report["totals_before"], report["totals_after"]
    print(f"removed {len(report['removed_units'])} units ({report['budget']}):")
    for name in report["removed_units"]:
        print(f"  - {name}")
    name = report.get("denoiser", {}).get("class", "UNet")
    print(f"{name} params: {before['params']:,} -> {after['params']:,} ({after['params'] / before['params']:.1%})")
    print(f"{name} MACs:   {before['macs']:,} -> {after['macs']:,} ({after['macs'] / before['macs']:.1%})")
    for round_index, cost in report.get("scoring", {}).get("ld_pruner_rounds", {}).items():
        if cost.get("exhaustive_denoiser_evaluations"):
            print(
                f"LD-Pruner round {int(round_index) + 1} ({cost['allocation']}): {cost['denoiser_evaluations']:,} "
                f"denoiser evaluations of {cost['exhaustive_denoiser_evaluations']:,} exhaustive "
                f"({cost['fraction_of_exhaustive']:.0%}), {cost['seconds']:.0f} s"
            )
