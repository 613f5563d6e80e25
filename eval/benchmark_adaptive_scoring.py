"""LD-Pruner with adaptive sample allocation against exhaustive scoring: denoiser calls, and the selection.

For each model, `diffprune.prune` runs LD-Pruner twice on the same calibration set (seeds, prompts, steps) and
budget: `allocation="exhaustive"` (every candidate on every sample, the paper's) and `allocation="adaptive"` (the
default: samples go to candidates near the budget line). Denoiser evaluations are counted at the denoiser (one
per sample in each batch it is called with; classifier-free guidance counts twice) and read from the prune
reports. Where the two select different units on a bundled model, both cuts are evaluated with FID (the bundled
feature network) against the original's samples over `--repeats` sample seeds, mean +- std.

    # the table in docs/results.md (CLI calibration defaults: 32 samples x 20 steps)
    python eval/benchmark_adaptive_scoring.py --models digits-t2i,digits-ddpm,digits-sd3,sd15-shape --threads 1
    # the statistic option: add --statistic paired

sd15-shape is SD-1.5's pipeline shape with random weights (eval/benchmark_sd15_speedup.py) at
`--sd15-resolution` (default 64, latents 8x8, so a CPU can run its exhaustive round); FID means nothing there,
so only the selection is compared. Times are wall-clock seconds of each scoring round: on a shared machine
compare the evaluation counts, not the times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_criteria import FEATURES  # noqa: E402
from results_file import hardware, write_section  # noqa: E402

from diffprune.criteria import LDPruner  # noqa: E402
from diffprune.evaluation.running import load_models, run_evaluation  # noqa: E402
from diffprune.evaluation.settings import EvaluationSettings  # noqa: E402
from diffprune.models.adapters import CalibrationSettings  # noqa: E402
from diffprune.models.prompts import default_prompts  # noqa: E402
from diffprune.pruning.prune import prune  # noqa: E402
from diffprune.structure.selection import Budget  # noqa: E402

SD15_SHAPE = "sd15-shape"


def load(model: str, args):
    if model == SD15_SHAPE:
        from benchmark_sd15_speedup import sd15_pipeline, sd15_unet

        torch.manual_seed(0)
        pipeline = sd15_pipeline(sd15_unet(args.sd15_resolution))
        pipeline.set_progress_bar_config(disable=True)
        return pipeline
    from diffprune.models.loading import load_pipeline

    return load_pipeline(model)


def fid(model, original, cuts: dict, args) -> dict:
    """{label: [FID per repeat]} of each cut against the original's samples, all cuts in one evaluation run."""
    values = {label: [] for label in cuts}
    for repeat in range(args.repeats):
        run = run_evaluation(
            load_models({"original": original, **cuts}),
            "original",
            EvaluationSettings(
                metrics=("fid",),
                num_samples=args.eval_samples,
                seed=1000 * repeat,
                num_inference_steps=args.eval_steps,
                fid_features=FEATURES[model],
                show_progress=False,
            ),
        )
        for label in cuts:
            values[label].append(run.rows[label]["fid"]["vs_reference"])
    return values


def measure(model: str, args) -> dict:
    original = load(model, args)
    calibration = CalibrationSettings(
        num_samples=args.num_samples, num_inference_steps=args.steps, prompts=default_prompts(original)
    )
    results = {}
    for allocation in ("exhaustive", "adaptive"):
        started = time.perf_counter()
        results[allocation] = prune(
            original,
            LDPruner(statistic=args.statistic, allocation=allocation),
            Budget(keep_macs=args.keep_macs),
            calibration=calibration,
            show_progress=False,
        )
        cost = results[allocation].report["scoring"]["ld_pruner_rounds"]["0"]
        print(
            f"{model} {allocation}: {cost['denoiser_evaluations']:,} evaluations, {time.perf_counter() - started:.0f} s"
        )
    exhaustive, adaptive = results["exhaustive"], results["adaptive"]
    spent = adaptive.report["scoring"]["ld_pruner_rounds"]["0"]
    full = exhaustive.report["scoring"]["ld_pruner_rounds"]["0"]
    row = {
        "model": model,
        "units": len(exhaustive.report["units"]),
        "exhaustive": full["denoiser_evaluations"],
        "adaptive": spent["denoiser_evaluations"],
        "fraction": spent["denoiser_evaluations"] / full["denoiser_evaluations"],
        "stages": spent["stages"],
        "exhaustive_seconds": full["seconds"],
        "adaptive_seconds": spent["seconds"],
        "same": set(adaptive.removed) == set(exhaustive.removed),
        "different": sorted(set(adaptive.removed) ^ set(exhaustive.removed)),
        "kept": (exhaustive.report["kept_fraction"]["macs"], adaptive.report["kept_fraction"]["macs"]),
        "fid": None,
    }
    if not row["same"] and model in FEATURES:
        row["fid"] = fid(model, original, {"exhaustive": exhaustive.pipeline, "adaptive": adaptive.pipeline}, args)
    print(row, flush=True)
    return row


def mean_std(values) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def markdown(rows, args, command, load_average) -> str:
    lines = [
        f"## LD-Pruner: adaptive sample allocation vs exhaustive ({args.statistic} statistic, {args.keep_macs} of the MACs)",
        "",
        f"Command: `{command}` · hardware: {hardware()}; {torch.get_num_threads()} torch thread(s); load average "
        f"{load_average} (1-minute)",
        "",
        f"Calibration {args.num_samples} samples x {args.steps} steps of each pipeline's own sampler; denoiser "
        "evaluations counted at the denoiser (guidance halves count twice). *Same selection*: both remove the same "
        f"units; where not, FID of both cuts against the original ({args.eval_samples} samples, {args.eval_steps} "
        f"steps, mean ± std over {args.repeats} sample seeds). Times are wall-clock seconds of the scoring round.",
        "",
        "| model | units | exhaustive evaluations | adaptive evaluations | adaptive / exhaustive | stages "
        "| same selection | MACs kept (exhaustive / adaptive) | FID exhaustive | FID adaptive | round s (exh. / adapt.) |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---|",
    ]
    for row in rows:
        fid_values = row["fid"] or {}
        lines.append(
            f"| {row['model']} | {row['units']} | {row['exhaustive']:,} | {row['adaptive']:,} | "
            f"**{row['fraction']:.1%}** | {row['stages']} | "
            + ("yes" if row["same"] else f"no ({len(row['different'])} units differ)")
            + f" | {row['kept'][0]:.3f} / {row['kept'][1]:.3f} | "
            + (mean_std(fid_values["exhaustive"]) if fid_values else "")
            + " | "
            + (mean_std(fid_values["adaptive"]) if fid_values else "")
            + f" | {row['exhaustive_seconds']:.0f} / {row['adaptive_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="digits-t2i,digits-ddpm,digits-sd3,sd15-shape")
    parser.add_argument("--statistic", default="distribution", choices=("distribution", "paired"))
    parser.add_argument("--keep-macs", type=float, default=0.7)
    parser.add_argument("--num-samples", type=int, default=32, help="calibration samples (default 32, the CLI's)")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps (default 20, the CLI's)")
    parser.add_argument("--sd15-resolution", type=int, default=64)
    parser.add_argument("--eval-samples", type=int, default=64)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--section", default="adaptive-scoring")
    parser.add_argument("--no-results-md", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    load_at_start = os.getloadavg()[0]
    rows = [measure(model.strip(), args) for model in args.models.split(",")]
    load_average = f"{load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    table = markdown(rows, args, " ".join(["python"] + sys.argv), load_average)
    print(table)
    if not args.no_results_md:
        write_section(args.section, table)


if __name__ == "__main__":
    main()
