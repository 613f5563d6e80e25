"""The flow the recipe scripts in this folder share: load a pipeline, prune its UNet, optionally distill the cut
from the original, evaluate the cut against the original and write the comparison page.

The scripts (prune_stable_diffusion.py, prune_sdxl.py, prune_flux.py, prune_pixart.py) differ only in their
`RecipeDefaults`. The flags are the `diffprune prune` command's own argument groups (criterion, budget, scoring
and selection, calibration, device) and `diffprune compare`'s quality flags, with the script's defaults, plus
the distillation and evaluation flags only a recipe has. Every step is a diffprune library call, the same ones
`diffprune prune`, `diffprune distill` and `diffprune compare` make, and errors behave as in the `diffprune`
command: a user mistake is one line on stderr and exit code 2.

What a run writes into --out (a new folder; it appears complete or not at all):
    pruned/       the pruned pipeline (reloads with diffprune.load_pipeline or diffusers, as its README.md says),
                  pruning_report.json (removed units, MACs and parameters before/after), README.md, scores.png
    distilled/    with --distill-steps N: the pruned pipeline after N distillation steps from the original,
                  the same report and card, and distillation_report.json (settings, loss history)
    comparison/   report.html (the comparison page: samples side by side, metrics), grid.png, report.json,
                  samples/ (the same prompts and seeds through original, pruned and distilled)
While it runs, scores and distillation checkpoints are kept in <out>/.diffprune-work: after a crash, an
interruption or a failed evaluation, rerunning the same command (the evaluation flags may change) resumes there.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import diffprune  # lazy: the names used inside run() load torch and diffusers, so --help stays fast
from diffprune.cli import as_cli_message, option_strings, quiet_libraries
from diffprune.cli.device_options import add_device_options, device_and_dtype_from_args
from diffprune.cli.evaluation_options import add_quality_options, quality_settings_from_args
from diffprune.cli.prune import (
    add_budget_arguments,
    add_calibration_arguments,
    add_criterion_arguments,
    add_selection_arguments,
    budget_from_args,
    calibration_from_args,
    criterion_from_args,
    kinds_filter,
    print_summary,
)
from diffprune.errors import DiffpruneError
from diffprune.outputs import WORK_FOLDER, check_new_output, staged_output

METRICS_HELP = (
    "comma-separated: fid, clip, latency, macs (default: fid and clip against the original, plus latency and "
    "macs). CLIP needs the weights of --clip-model and FID the InceptionV3 weights (torch-fidelity downloads "
    "them, or pass --fid-weights); without them, e.g. offline, use --metrics macs,latency"
)


@dataclass(frozen=True)
class RecipeDefaults:
    """What one recipe script sets; everything else is shared."""

    description: str  # the script's docstring (shown by --help)
    model: str  # hub id of the default model
    pipeline_class: str  # the diffusers class --model must load as
    other_pipelines: str  # where to go for a model of another class (the error says it)
    keep_macs: float  # default budget: fraction of the denoiser's MACs kept
    dtype_on_cuda: str  # the default --dtype on a GPU (a CPU defaults to fp32)
    num_samples: int  # calibration samples
    inference_steps: int  # denoising steps per calibration sample
    variants_per_batch: int  # candidate cuts generated together while scoring
    max_batch: int  # calibration samples x candidate cuts per denoiser call (GPU memory at the model's resolution)
    distill_batch_size: int
    eval_samples: int
    eval_batch_size: int  # samples per pipeline call while evaluating
    eval_inference_steps: int = 25
    distill_samples: int = 64  # the teacher's samples distillation trains on (as `diffprune distill`)
    depth_only: bool = False  # remove whole transformer blocks only (unless --kinds): the cut stays the stock class

    def flag_defaults(self) -> dict:
        """{flag's dest: default} for the flags whose default this recipe sets."""
        names = ("model", "num_samples", "inference_steps", "variants_per_batch", "max_batch", "distill_batch_size")
        names += ("distill_samples", "eval_samples", "eval_batch_size", "eval_inference_steps")
        return {name: getattr(self, name) for name in names}


def build_parser(defaults: RecipeDefaults, prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=defaults.description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="hub id or local pipeline folder (default: %(default)s)")
    parser.add_argument("--out", required=True, help="new output folder (rerun the same command to resume)")
    add_device_options(
        parser,
        dtype_help="precision the pipeline is loaded, pruned, distilled, saved and evaluated in "
        f"(default: {defaults.dtype_on_cuda} on a GPU, fp32 on a CPU)",
    )
    add_criterion_arguments(parser)
    add_budget_arguments(parser, defaults.keep_macs)
    add_selection_arguments(parser)
    add_calibration_arguments(parser)
    add_distillation_arguments(parser)
    add_evaluation_arguments(parser)
    parser.set_defaults(**defaults.flag_defaults())
    return parser


def add_distillation_arguments(parser) -> None:
    group = parser.add_argument_group("distillation from the original")
    group.add_argument("--distill-steps", type=int, default=0, help="training steps; 0 skips distillation (default: 0)")
    group.add_argument("--distill-batch-size", type=int, help="default: %(default)s")
    group.add_argument(
        "--distill-samples",
        type=int,
        help="samples of the original it trains on, from the calibration prompts (default: %(default)s)",
    )


def add_evaluation_arguments(parser) -> None:
    group = parser.add_argument_group("evaluation against the original")
    group.add_argument("--eval-samples", type=int, help="samples per model (default: %(default)s)")
    group.add_argument("--eval-inference-steps", type=int, help="denoising steps per sample (default: %(default)s)")
    group.add_argument(
        "--eval-prompts", metavar="FILE", help="one per line (default: the calibration prompts, with other seeds)"
    )
    group.add_argument("--eval-batch-size", type=int, help="samples per pipeline call (default: %(default)s)")
    group.add_argument("--metrics", help=METRICS_HELP)
    add_quality_options(parser)


def main(defaults: RecipeDefaults, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the recipe with the command line `argv` (default: sys.argv); 0 on success, 2 on a user error."""
    parser = build_parser(defaults, prog)
    args = parser.parse_args(argv)
    quiet_libraries()  # as the `diffprune` command: library chatter would bury the one-line messages
    try:
        run(args, defaults)
    except DiffpruneError as error:
        work = Path(args.out, WORK_FOLDER)
        hint = f" (finished work is kept in {work}: rerun to resume)" if work.is_dir() else ""
        print(f"{parser.prog}: error: {as_flags(str(error), parser)}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """Library errors name arguments in backticks (`fid_weights`); say the flag (--fid-weights) where the recipe
    has one. `num_samples` and `num_inference_steps` stay: calibration and evaluation each have a flag for them."""
    ambiguous = {"--num-samples", "--inference-steps"}
    return as_cli_message(message, option_strings(parser) - ambiguous, renamed={})


@dataclass
class Steps:
    """What a run does, from its flags, all checked before the model loads: a typo costs seconds, not a run."""

    out: Path
    device: str
    dtype: object  # torch dtype
    criterion: object
    budget: object
    unit_filter: object
    distill: object  # DistillSettings, or None without distillation
    evaluation: dict  # keyword arguments for compare_and_report


def run(args, defaults: RecipeDefaults) -> Path:
    steps = checked_steps(args, defaults)
    print(f"loading {args.model} on {steps.device} in {args.dtype}", flush=True)
    original = load_original(args, defaults, steps)
    calibration = calibration_from_args(args, original)
    steps.evaluation["prompts"] = steps.evaluation["prompts"] or calibration.prompts
    distill_calibration = distillation_calibration(args, original, calibration) if steps.distill else None
    result = prune_original(args, steps, original, calibration)
    models = {"original": original, "pruned": result.pipeline}
    history = None
    if steps.distill is not None:
        models["distilled"], history = distill_cut(args, steps, result.pipeline, original, distill_calibration)
    return save_and_compare(args, steps, result, models, history)


def checked_steps(args, defaults: RecipeDefaults) -> Steps:
    # deferred: model code loads only when the recipe runs, so --help stays fast
    from diffprune.evaluation.settings import EvaluationSettings
    from diffprune.models.prompts import read_prompts

    device, dtype = device_and_dtype_from_args(args, defaults.dtype_on_cuda)
    out = check_new_output(args.out, allowed=(WORK_FOLDER,))
    if args.distill_steps < 0:
        raise DiffpruneError("--distill-steps must be 0 (no distillation) or more")
    distill = None
    if args.distill_steps > 0:
        distill = diffprune.DistillSettings(steps=args.distill_steps, batch_size=args.distill_batch_size)
    # Calibration sample i (and distillation's) uses seed + i; the evaluation draws seeds none of them used.
    used_seeds = max(args.num_samples, args.distill_samples if distill else 0)
    evaluation = {
        "metrics": args.metrics,
        "seed": args.seed + used_seeds,
        "num_samples": args.eval_samples,
        "prompts": read_prompts(args.eval_prompts) if args.eval_prompts else None,
        "num_inference_steps": args.eval_inference_steps,
        "generation_batch_size": args.eval_batch_size,
        **quality_settings_from_args(args),
        "device": device,
    }
    EvaluationSettings(**evaluation)  # checks metric names, sample counts and files
    unit_filter = kinds_filter(args.kinds) or (diffprune.is_depth_unit if defaults.depth_only else None)
    budget = budget_from_args(args, defaults.keep_macs)
    return Steps(out, device, dtype, criterion_from_args(args), budget, unit_filter, distill, evaluation)


def load_original(args, defaults: RecipeDefaults, steps: Steps):
    original = diffprune.load_pipeline(args.model, device=steps.device, torch_dtype=steps.dtype)
    if type(original).__name__ != defaults.pipeline_class:
        raise DiffpruneError(
            f"{args.model} is a {type(original).__name__}; this recipe prunes {defaults.pipeline_class} models "
            f"({defaults.other_pipelines})"
        )
    return original


def distillation_calibration(args, pipeline, calibration):
    """The calibration set distillation trains on; its training-time conditioning is asked for one sample now,
    so a family distillation does not support yet (SDXL's two text encoders) fails before pruning, not after."""
    # deferred: model code loads only when the recipe runs, so --help stays fast
    from diffprune.models.adapters import adapter_for

    distill_calibration = dataclasses.replace(calibration, num_samples=args.distill_samples)
    adapter_for(pipeline, dataclasses.replace(distill_calibration, show_progress=False)).conditioning([0])
    return distill_calibration


def prune_original(args, steps: Steps, original, calibration):
    print(f"\n=== pruning with {args.criterion}: {steps.budget.describe()} ===", flush=True)
    result = diffprune.prune(
        original,
        steps.criterion,
        steps.budget,
        unit_filter=steps.unit_filter,
        rounds=args.rounds,
        calibration=calibration,
        work_dir=steps.out / WORK_FOLDER,
        variants_per_batch=args.variants_per_batch,
        ranking=args.ranking,
        source=args.model,
        show_progress=True,
    )
    print_summary(result.report)
    return result


def distill_cut(args, steps: Steps, pruned, original, calibration):
    print(f"\n=== distilling {args.distill_steps} steps from the original ===", flush=True)
    work = steps.out / WORK_FOLDER
    distilled, history = diffprune.distill(pruned, original, steps.distill, calibration, work_dir=work)
    print(f"distillation loss {history[0]['loss']:.4f} -> {history[-1]['loss']:.4f}")
    return distilled, history


def save_and_compare(args, steps: Steps, result, models: dict, history) -> Path:
    """pruned/, distilled/ (as `diffprune distill` saves one: the cut's report and card, plus its own) and
    comparison/, all appearing at once."""
    # deferred: model code loads only when the recipe runs, so --help stays fast
    from diffprune.models.saved_folder import save_pruned_folder
    from diffprune.recovery.distillation import distillation_report

    print("\n=== saving, and evaluating against the original ===", flush=True)
    out = steps.out
    with staged_output(out) as staging:
        result.save(staging / "pruned")
        if history is not None:
            report = distillation_report(str(out / "pruned"), args.model, steps.distill, history)
            save_pruned_folder(staging / "distilled", models["distilled"], result.report, report)
        comparison = diffprune.compare_and_report(models, "original", staging / "comparison", **steps.evaluation)
    shutil.rmtree(out / WORK_FOLDER, ignore_errors=True)
    print(comparison["table"])
    written = [name for name in ("pruned", "distilled", "comparison") if (out / name).is_dir()]
    print(f"\nsaved to {out}: {', '.join(written)}; the comparison page is {out / 'comparison' / 'report.html'}")
    return out
