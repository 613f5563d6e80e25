"""The flow the recipe scripts in this folder share: load a pipeline, prune its UNet, optionally distill the cut
from the original, evaluate the cut against the original and write the comparison page.

The scripts (prune_stable_diffusion.py, prune_sdxl.py) differ only in their `RecipeDefaults`. Every step is a
diffprune library call, the same ones `diffprune prune`, `diffprune distill` and `diffprune compare` make, and
errors behave as in the `diffprune` command: a user mistake is one line on stderr and exit code 2.

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

import diffprune
from diffprune import DiffpruneError  # the other names load torch and diffusers: used inside run(), so --help is fast

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
    keep_macs: float  # default budget: fraction of UNet MACs kept
    dtype_on_cuda: str  # the default --dtype on a GPU (a CPU defaults to fp32)
    num_samples: int  # calibration samples
    inference_steps: int  # denoising steps per calibration sample
    variants_per_batch: int  # candidate cuts generated together while scoring
    max_batch: int  # calibration samples x candidate cuts per UNet call (GPU memory at the model's resolution)
    distill_batch_size: int
    eval_samples: int
    eval_batch_size: int  # samples per pipeline call while evaluating
    eval_inference_steps: int = 25
    distill_samples: int = 64  # the teacher's samples distillation trains on (as `diffprune distill`)
    depth_only: bool = False  # remove whole transformer blocks only: the cut stays the stock class


def build_parser(defaults: RecipeDefaults, prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=defaults.description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=defaults.model, help="hub id or local pipeline folder (default: %(default)s)"
    )
    parser.add_argument("--out", required=True, help="new output folder (rerun the same command to resume)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if a GPU is visible, else cpu)")
    parser.add_argument(
        "--dtype",
        choices=["fp32", "bf16", "fp16"],
        help=f"precision the pipeline is loaded, pruned, distilled, saved and evaluated in "
        f"(default: {defaults.dtype_on_cuda} on a GPU, fp32 on a CPU)",
    )

    budget = parser.add_argument_group(f"budget (one of; default --keep-macs {defaults.keep_macs})")
    exclusive = budget.add_mutually_exclusive_group()
    exclusive.add_argument("--keep-macs", type=float, help="fraction of UNet MACs to keep")
    exclusive.add_argument("--keep-params", type=float, help="fraction of UNet parameters to keep")
    exclusive.add_argument("--num-units", type=int, help="number of units to remove")

    criterion = parser.add_argument_group("criterion")
    criterion.add_argument("--criterion", default="ld-pruner", help="scoring criterion (default: %(default)s)")
    criterion.add_argument(
        "--criterion-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the criterion, repeatable (e.g. statistic=paired for ld-pruner)",
    )

    calibration = parser.add_argument_group("calibration")
    calibration.add_argument(
        "--num-samples", type=int, default=defaults.num_samples, help="calibration samples (default: %(default)s)"
    )
    calibration.add_argument(
        "--inference-steps",
        type=int,
        default=defaults.inference_steps,
        help="denoising steps per calibration sample (default: %(default)s)",
    )
    calibration.add_argument(
        "--prompts",
        metavar="FILE",
        help="calibration prompts, one per line (default: the model folder's calibration_prompts.txt, else "
        "assets/prompts/calibration.txt)",
    )
    calibration.add_argument(
        "--variants-per-batch",
        type=int,
        default=defaults.variants_per_batch,
        help="candidate cuts generated together while scoring (default: %(default)s)",
    )
    calibration.add_argument(
        "--max-batch",
        type=int,
        default=defaults.max_batch,
        help="samples x candidate cuts per UNet call while scoring, at least --variants-per-batch; lower both if "
        "GPU memory runs out (default: %(default)s)",
    )

    distillation = parser.add_argument_group("distillation from the original")
    distillation.add_argument(
        "--distill-steps", type=int, default=0, help="training steps; 0 skips distillation (default: 0)"
    )
    distillation.add_argument(
        "--distill-batch-size",
        type=int,
        default=defaults.distill_batch_size,
        help="default: %(default)s",
    )
    distillation.add_argument(
        "--distill-samples",
        type=int,
        default=defaults.distill_samples,
        help="samples of the original it trains on, from the calibration prompts (default: %(default)s)",
    )

    evaluation = parser.add_argument_group("evaluation against the original")
    evaluation.add_argument(
        "--eval-samples", type=int, default=defaults.eval_samples, help="samples per model (default: %(default)s)"
    )
    evaluation.add_argument(
        "--eval-inference-steps",
        type=int,
        default=defaults.eval_inference_steps,
        help="denoising steps per sample (default: %(default)s)",
    )
    evaluation.add_argument(
        "--eval-prompts", metavar="FILE", help="one per line (default: the calibration prompts, with other seeds)"
    )
    evaluation.add_argument(
        "--eval-batch-size",
        type=int,
        default=defaults.eval_batch_size,
        help="samples per pipeline call (default: %(default)s)",
    )
    evaluation.add_argument("--metrics", help=METRICS_HELP)
    evaluation.add_argument(
        "--clip-model",
        help="CLIP hub id or folder for the CLIP score (default: openai/clip-vit-large-patch14; digits-clip for the "
        "bundled digits-t2i)",
    )
    evaluation.add_argument(
        "--fid-features",
        help="FID feature network: inception or a FeatureClassifier folder (default: inception; digits-features "
        "for the bundled digits-t2i)",
    )
    evaluation.add_argument("--fid-weights", help="InceptionV3 weights file (pt_inception-2015-12-05) for offline FID")
    return parser


def main(defaults: RecipeDefaults, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the recipe with the command line `argv` (default: sys.argv); 0 on success, 2 on a user error."""
    parser = build_parser(defaults, prog)
    args = parser.parse_args(argv)
    from diffprune.cli import quiet_libraries

    quiet_libraries()  # as the `diffprune` command: library chatter would bury the one-line messages
    try:
        run(args, defaults)
    except DiffpruneError as error:
        from diffprune.outputs import WORK_FOLDER

        resumable = Path(args.out, WORK_FOLDER).is_dir()
        hint = f" (finished work is kept in {Path(args.out, WORK_FOLDER)}: rerun to resume)" if resumable else ""
        print(f"{parser.prog}: error: {as_flags(str(error), parser)}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """Library errors name arguments in backticks (`fid_weights`); say the flag (--fid-weights) where the recipe
    has one. `num_samples` and `num_inference_steps` stay: calibration and evaluation each have a flag for them."""
    from diffprune.cli import as_cli_message, option_strings

    ambiguous = {"--num-samples", "--inference-steps"}
    return as_cli_message(message, option_strings(parser) - ambiguous, renamed={})


def run(args, defaults: RecipeDefaults) -> Path:
    from diffprune.cli.prune import print_summary
    from diffprune.criteria import parse_option_values
    from diffprune.devices import resolve_device, torch_dtype
    from diffprune.evaluation.settings import EvaluationSettings
    from diffprune.models.prompts import default_prompts, read_prompts
    from diffprune.models.saved_folder import save_pruned_folder
    from diffprune.outputs import WORK_FOLDER, check_new_output, staged_output
    from diffprune.recovery.distillation import distillation_report

    # Everything that can be checked is checked before the model loads: a typo costs seconds, not a pruning run.
    device = resolve_device(args.device)
    dtype_name = args.dtype or (defaults.dtype_on_cuda if device.startswith("cuda") else "fp32")
    dtype = torch_dtype(dtype_name, device)
    out = check_new_output(args.out, allowed=(WORK_FOLDER,))
    work = out / WORK_FOLDER
    criterion = diffprune.get_criterion(args.criterion, **parse_option_values(args.criterion, args.criterion_option))
    if args.keep_macs is None and args.keep_params is None and args.num_units is None:
        args.keep_macs = defaults.keep_macs
    budget = diffprune.Budget(keep_macs=args.keep_macs, keep_params=args.keep_params, num_units=args.num_units)
    if args.distill_steps < 0:
        raise DiffpruneError("--distill-steps must be 0 (no distillation) or more")
    distill_settings = None
    if args.distill_steps > 0:
        distill_settings = diffprune.DistillSettings(steps=args.distill_steps, batch_size=args.distill_batch_size)
    # Calibration sample i (and distillation's) uses seed i; the evaluation draws seeds none of them used.
    used_seeds = max(args.num_samples, args.distill_samples if distill_settings else 0)
    evaluation = {
        "metrics": args.metrics,
        "seed": used_seeds,
        "num_samples": args.eval_samples,
        "prompts": read_prompts(args.eval_prompts) if args.eval_prompts else None,
        "num_inference_steps": args.eval_inference_steps,
        "generation_batch_size": args.eval_batch_size,
        "clip_model": args.clip_model,
        "fid_features": args.fid_features,
        "fid_weights": args.fid_weights,
        "device": device,
    }
    EvaluationSettings(**evaluation)  # checks metric names, sample counts and files now

    print(f"loading {args.model} on {device} in {dtype_name}", flush=True)
    original = diffprune.load_pipeline(args.model, device=device, torch_dtype=dtype)
    if type(original).__name__ != defaults.pipeline_class:
        raise DiffpruneError(
            f"{args.model} is a {type(original).__name__}; this recipe prunes {defaults.pipeline_class} models "
            f"({defaults.other_pipelines})"
        )
    prompts = read_prompts(args.prompts) if args.prompts else default_prompts(original)
    calibration = diffprune.CalibrationSettings(
        num_samples=args.num_samples,
        num_inference_steps=args.inference_steps,
        prompts=prompts,
        max_batch=args.max_batch,
    )
    if evaluation["prompts"] is None:
        evaluation["prompts"] = prompts
    distill_calibration = None
    if distill_settings is not None:
        distill_calibration = dataclasses.replace(calibration, num_samples=args.distill_samples)
        check_distillation_applies(original, distill_calibration)

    print(f"\n=== pruning with {args.criterion}: {budget.describe()} ===", flush=True)
    result = diffprune.prune(
        original,
        criterion,
        budget,
        calibration=calibration,
        work_dir=work,
        variants_per_batch=args.variants_per_batch,
        source=args.model,
        show_progress=True,
        unit_filter=diffprune.is_depth_unit if defaults.depth_only else None,
    )
    print_summary(result.report)
    models = {"original": original, "pruned": result.pipeline}
    history = None
    if distill_settings is not None:
        print(f"\n=== distilling {args.distill_steps} steps from the original ===", flush=True)
        distilled, history = diffprune.distill(
            result.pipeline, original, distill_settings, distill_calibration, work_dir=work, show_progress=True
        )
        models["distilled"] = distilled
        print(f"distillation loss {history[0]['loss']:.4f} -> {history[-1]['loss']:.4f}")

    print("\n=== saving, and evaluating against the original ===", flush=True)
    with staged_output(out) as staging:
        result.save(staging / "pruned")
        if history is not None:
            # The distilled cut, saved as `diffprune distill` saves one: the cut's report and card, plus its own.
            report = distillation_report(str(out / "pruned"), args.model, distill_settings, history)
            save_pruned_folder(staging / "distilled", models["distilled"], result.report, report)
        comparison = diffprune.compare_and_report(models, "original", staging / "comparison", **evaluation)
    shutil.rmtree(work, ignore_errors=True)
    print(comparison["table"])
    written = [name for name in ("pruned", "distilled", "comparison") if (out / name).is_dir()]
    print(f"\nsaved to {out}: {', '.join(written)}; the comparison page is {out / 'comparison' / 'report.html'}")
    return out


def check_distillation_applies(pipeline, calibration) -> None:
    """Distillation needs the pipeline's training-time conditioning; ask for one sample's now, so a family it
    does not support yet (SDXL's two text encoders) fails before pruning instead of after it."""
    from diffprune.models.adapters import adapter_for

    adapter_for(pipeline, dataclasses.replace(calibration, show_progress=False)).conditioning([0])
