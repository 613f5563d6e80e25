"""`diffprune distill PRUNED --teacher ORIGINAL --steps N --out FOLDER`."""

from __future__ import annotations

from pathlib import Path

from diffprune.cli.device_options import add_device_options, device_and_dtype_from_args
from diffprune.cli.prune import add_calibration_arguments, calibration_from_args
from diffprune.distributed import is_main_process
from diffprune.errors import DiffpruneError
from diffprune.outputs import WORK_FOLDER, check_new_output


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "distill",
        help="recover quality: train a pruned pipeline toward the original (output + feature distillation)",
    )
    parser.add_argument("model", help="the pruned pipeline (folder from `diffprune prune`)")
    parser.add_argument("--teacher", required=True, help="the original pipeline (folder, hub id or bundled name)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument(
        "--loss-weights",
        default="1,1,1",
        help="task,output,feature loss weights (BK-SDM: 1,1,1; plain fine-tuning: 1,0,0)",
    )
    parser.add_argument("--ema-decay", type=float, default=0.999, help="0 disables EMA")
    parser.add_argument(
        "--mixed-precision",
        default=None,
        choices=["no", "fp16", "bf16"],
        help="autocast precision of training (default: the --dtype; weights train in fp32)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--out", required=True, help="output folder (must be new; rerun the same command to resume)")

    add_calibration_arguments(parser)
    add_device_options(
        parser,
        dtype_help="load both pipelines in this precision; the distilled model is saved in it (default: as stored)",
    )
    parser.set_defaults(run=run, num_samples=64)


def parse_weights(text: str) -> tuple[float, float, float]:
    try:
        task, output, feature = (float(part) for part in text.split(","))
    except ValueError:
        raise DiffpruneError(f"--loss-weights takes three numbers like 1,1,1; got {text!r}") from None
    return task, output, feature


def run(args) -> int:
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.models.loading import load_pipeline
    from diffprune.recovery.distillation import DistillSettings, distill

    task, output, feature = parse_weights(args.loss_weights)
    settings = DistillSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        task_weight=task,
        output_weight=output,
        feature_weight=feature,
        ema_decay=args.ema_decay or None,
        mixed_precision=args.mixed_precision,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
    )
    device, dtype = device_and_dtype_from_args(args)
    out = check_new_output(args.out, allowed=(WORK_FOLDER,))
    student = load_pipeline(args.model, device=device, torch_dtype=dtype)
    teacher = load_pipeline(args.teacher, device=device, torch_dtype=dtype)
    pipeline, history = distill(
        student, teacher, settings, calibration_from_args(args, teacher), work_dir=out / WORK_FOLDER
    )

    if is_main_process():
        save_distilled(pipeline, history, settings, args, out)
        print(
            f"distilled {args.steps} steps; loss {history[0]['loss']:.4f} -> {history[-1]['loss']:.4f}; saved to {out}"
        )
    return 0


def save_distilled(pipeline, history, settings, args, out: Path) -> None:
    """The distilled cut with the student's pruning report and card carried forward, and its own report."""
    # deferred: model code loads only when the command runs, so `diffprune --help` stays fast
    from diffprune.models.saved_folder import pruning_report_of, save_pruned_folder
    from diffprune.recovery.distillation import distillation_report
    from diffprune.structure.denoiser import denoiser_of

    report = distillation_report(args.model, args.teacher, settings, history)
    save_pruned_folder(out, pipeline, pruning_report_of(args.model, denoiser_of(pipeline)), report)
