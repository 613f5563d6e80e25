"""Selection order under one budget: lowest score first vs lowest score per MAC saved, same LD-Pruner scores.

    .venv/bin/python eval/benchmark_ranking.py [--models digits-t2i] [--keep-macs 0.7]

The scores are computed once per model (the second prune reuses them from the work folder).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_criteria import mean_std, quality  # noqa: E402
from results_file import hardware, write_section  # noqa: E402

from diffprune.models.adapters import CalibrationSettings  # noqa: E402
from diffprune.models.loading import load_pipeline  # noqa: E402
from diffprune.models.prompts import default_prompts  # noqa: E402
from diffprune.pruning.prune import prune  # noqa: E402
from diffprune.structure.selection import (
    RANKINGS,  # noqa: E402
    Budget,  # noqa: E402
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits-t2i")
    parser.add_argument("--keep-macs", type=float, default=0.7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-samples", type=int, default=64)
    parser.add_argument("--eval-steps", type=int, default=20)
    args = parser.parse_args()
    lines = [
        "| model | ranking | units removed | MACs kept | FID vs original | CLIP score (original's) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as work:
        for model in args.models.split(","):
            original = load_pipeline(model)
            calibration = CalibrationSettings(
                num_samples=16, num_inference_steps=10, prompts=default_prompts(original, model)
            )
            for ranking in RANKINGS:
                result = prune(
                    original,
                    budget=Budget(keep_macs=args.keep_macs),
                    calibration=calibration,
                    ranking=ranking,
                    work_dir=Path(work) / model,
                    show_progress=False,
                )
                fids, clips, reference_clips = [], [], []
                for repeat in range(args.repeats):
                    fid, clip, reference_clip = quality(result.pipeline, original, model, args, seed=1000 * repeat)
                    fids.append(fid)
                    if clip is not None:
                        clips.append(clip)
                        reference_clips.append(reference_clip)
                clip_text = f"{mean_std(clips)} ({mean_std(reference_clips)})" if clips else "–"
                lines.append(
                    f"| {model} | {ranking} | {len(result.removed)} | {result.report['kept_fraction']['macs']:.3f} "
                    f"| {mean_std(fids)} | {clip_text} |"
                )
                print(lines[-1], flush=True)
    command = " ".join(["python"] + sys.argv)
    text = (
        f"## Selection order: lowest score vs lowest score per MAC\n\nCommand: `{command}` · hardware: {hardware()}\n\n"
        f"Same LD-Pruner scores (16 calibration samples x 10 steps of the pipeline's own sampler), keep_macs {args.keep_macs}; FID/CLIP "
        f"as in the criteria table ({args.eval_samples} samples, {args.eval_steps} steps, mean ± std over "
        f"{args.repeats} sample seeds).\n\n" + "\n".join(lines) + "\n\nScore per MAC favours the largest units, whose "
        "single-unit scores are high (the mid block above all), so the default is lowest score first."
    )
    print(text)
    write_section("ranking", text)


if __name__ == "__main__":
    main()
