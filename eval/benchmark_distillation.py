"""What distillation recovers: a cut to 0.6 of UNet MACs (LD-Pruner), evaluated before any training, after N
steps of distillation from the original (task + output + feature losses, 1/1/1), and after the same N steps
of plain fine-tuning without the teacher (1/0/0), all in one run.

    .venv/bin/python eval/benchmark_distillation.py [--models digits-ddpm,digits-t2i] [--steps 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_criteria import mean_std, quality  # noqa: E402
from results_file import hardware, write_section  # noqa: E402

from diffprune.models.adapters import CalibrationSettings  # noqa: E402
from diffprune.models.loading import load_pipeline  # noqa: E402
from diffprune.models.prompts import default_prompts  # noqa: E402
from diffprune.pruning.prune import prune  # noqa: E402
from diffprune.recovery.distillation import DistillSettings, distill  # noqa: E402
from diffprune.structure.selection import Budget  # noqa: E402


def measure(pipeline, original, model, args):
    fids, clips = [], []
    for repeat in range(args.repeats):
        fid, clip, _ = quality(pipeline, original, model, args, seed=1000 * repeat)
        fids.append(fid)
        if clip is not None:
            clips.append(clip)
    return fids, clips


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits-ddpm,digits-t2i")
    parser.add_argument("--keep-macs", type=float, default=0.6)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--training-samples", type=int, default=64, help="teacher generations used as data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-samples", type=int, default=64)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    lines = []
    for model in args.models.split(","):
        original = load_pipeline(model)
        prompts = default_prompts(original)
        cut = prune(
            original,
            budget=Budget(keep_macs=args.keep_macs),
            show_progress=False,
            calibration=CalibrationSettings(num_samples=16, num_inference_steps=10, prompts=prompts),
        )
        rows = [("pruned, no training", cut.pipeline, 0.0)]
        for label, weights in (("distilled (1/1/1)", (1.0, 1.0, 1.0)), ("plain fine-tuning (1/0/0)", (1.0, 0.0, 0.0))):
            settings = DistillSettings(
                steps=args.steps,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                task_weight=weights[0],
                output_weight=weights[1],
                feature_weight=weights[2],
            )
            calibration = CalibrationSettings(
                num_samples=args.training_samples, num_inference_steps=20, prompts=prompts
            )
            started = time.perf_counter()
            trained, _ = distill(cut.pipeline, original, settings, calibration, show_progress=False)
            rows.append((label, trained, time.perf_counter() - started))
        has_clip = model == "digits-t2i"
        lines += [
            f"### {model} (LD-Pruner cut to {cut.report['kept_fraction']['macs']:.3f} of MACs, "
            f"{len(cut.removed)} units removed)",
            "",
            "| model | FID vs original | " + ("CLIP score | " if has_clip else "") + "training time |",
            "|---|---:|" + ("---:|" if has_clip else "") + "---:|",
        ]
        if has_clip:
            _, _, reference_clip = quality(original, original, model, args, seed=0)
            lines.append(f"| original | 0 | {reference_clip:.2f} | – |")
        for label, pipeline, seconds in rows:
            fids, clips = measure(pipeline, original, model, args)
            lines.append(
                f"| {label} | {mean_std(fids)} | "
                + (f"{mean_std(clips)} | " if has_clip else "")
                + (f"{seconds:.0f} s |" if seconds else "– |")
            )
            print(lines[-1], flush=True)
        lines.append("")
    command = " ".join(["python"] + sys.argv)
    text = (
        f"## Recovery by distillation\n\nCommand: `{command}` · hardware: {hardware()}\n\n"
        f"{args.steps} steps, batch {args.batch_size}, AdamW lr {args.learning_rate}, EMA 0.999, data-free "
        f"({args.training_samples} teacher generations). FID in the bundled feature network's space against "
        f"the original's samples ({args.eval_samples} samples, {args.eval_steps} steps, mean ± std over "
        f"{args.repeats} sample seeds).\n\n" + "\n".join(lines)
    )
    print(text)
    if not args.no_write:
        write_section("distillation", text)


if __name__ == "__main__":
    main()
