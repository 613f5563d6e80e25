"""LD-Pruner scoring in fp32 and in half precision: does the ranking survive, and how fast is a round?

For each dtype, one full LD-Pruner round (the original's latents, then every unit removed in turn, batched as
gate variants) on the same model, calibration prompts and seeds, through `diffprune.prune`'s own path
(models.loading.pipeline_in_dtype: a converted copy, the input untouched). Reports seconds per round, candidates
per second, the Spearman rank correlation of each dtype's scores with fp32's (scipy.stats.spearmanr), and
how many of the units that `select_units` removes at 0.7 of the MACs are the same as with fp32 scores.

    # the bundled models on a CPU (what docs/results.md holds)
    python eval/benchmark_scoring_speed.py --models digits-t2i,digits-ddpm --num-samples 16 --steps 10 --threads 1
    # SD-1.5's shape (random weights; eval/benchmark_sd15_speedup.py) on a GPU at the CLI defaults (32 x 20)
    python eval/benchmark_scoring_speed.py --models sd15-shape --device cuda --dtypes fp32,bf16,fp16

The default scoring precision of `diffprune prune` (the pipeline's own, see diffprune/pruning.py) was chosen
from this measurement on the CPU: bf16 kept the fp32 ranking of the bundled models closely (Spearman 0.96 to
0.999, the same or nearly the same units selected at 0.7 of the MACs) but ran 7 to 18 times slower, because
the CPU has no bf16 arithmetic. So half precision is an explicit `--dtype` choice (or the dtype a user loads
the pipeline in); on a GPU, run the sd15-shape command above to see whether it pays there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import hardware, write_section  # noqa: E402

from diffprune.criteria import ScoringContext, get_criterion  # noqa: E402
from diffprune.criteria.score_store import ScoreStore  # noqa: E402
from diffprune.devices import resolve_device, torch_dtype  # noqa: E402
from diffprune.models.adapters import CalibrationSettings, adapter_for  # noqa: E402
from diffprune.models.components import pipeline_in_dtype  # noqa: E402
from diffprune.models.prompts import default_prompts  # noqa: E402
from diffprune.structure.costs import count_macs, pipeline_cost_inputs  # noqa: E402
from diffprune.structure.selection import Budget, select_units  # noqa: E402
from diffprune.structure.units import find_units  # noqa: E402

SD15_SHAPE = "sd15-shape"
SELECTION_KEEP_MACS = 0.7


def load(model: str, device: str):
    if model == SD15_SHAPE:
        from benchmark_sd15_speedup import sd15_pipeline, sd15_unet

        torch.manual_seed(0)
        pipeline = sd15_pipeline(sd15_unet(512))
        pipeline.set_progress_bar_config(disable=True)
        return pipeline.to(device)
    from diffprune.models.loading import load_pipeline

    return load_pipeline(model, device=device)


def score_round(pipeline, dtype, calibration, variants_per_batch: int) -> dict:
    """One LD-Pruner round in `dtype`: scores, seconds, and the units with their costs."""
    scoring = pipeline_in_dtype(pipeline, dtype)
    units = find_units(scoring.unet, pipeline_cost_inputs(scoring))
    context = ScoringContext(
        adapter_for(scoring, calibration),
        units,
        ScoreStore(None, {}),
        show_progress=False,
        variants_per_batch=variants_per_batch,
    )
    device = next(scoring.unet.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    scores = get_criterion("ld-pruner", allocation="exhaustive").score(context, units, [], 0)  # with the reference
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"scores": scores, "seconds": seconds, "units": units, "peak_gib": peak}


def selection(units, scores, total_macs) -> set[str]:
    chosen = select_units(units, scores, Budget(keep_macs=SELECTION_KEEP_MACS), total_macs)
    return {unit.name for unit in chosen}


def measure(model: str, args) -> list[dict]:
    from scipy.stats import spearmanr

    device = resolve_device(args.device)
    pipeline = load(model, device)
    calibration = CalibrationSettings(
        num_samples=args.num_samples,
        num_inference_steps=args.steps,
        prompts=default_prompts(pipeline),
        show_progress=False,
    )
    total_macs = count_macs(pipeline.unet, pipeline_cost_inputs(pipeline))
    rows, reference = [], None
    for name in args.dtypes.split(","):
        result = score_round(pipeline, torch_dtype(name, device), calibration, args.variants_per_batch)
        names = [unit.name for unit in result["units"]]
        chosen = selection(result["units"], result["scores"], total_macs)
        if reference is None:
            reference = {"scores": result["scores"], "chosen": chosen}
        correlation = spearmanr([reference["scores"][n] for n in names], [result["scores"][n] for n in names]).statistic
        rows.append(
            {
                "model": model,
                "dtype": name,
                "units": len(names),
                "seconds": result["seconds"],
                "candidates_per_second": len(names) / result["seconds"],
                "spearman_vs_first": float(correlation),
                "same_selected": len(chosen & reference["chosen"]),
                "selected": len(chosen),
                "peak_gib": result["peak_gib"],
            }
        )
        print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict], args, command: str, load_average: str) -> str:
    first = args.dtypes.split(",")[0]
    lines = [
        f"## LD-Pruner scoring in {' and '.join(args.dtypes.split(','))} ({', '.join(dict.fromkeys(r['model'] for r in rows))}): "
        "ranking and speed",
        "",
        f"Command: `{command}` · hardware: {hardware()}; {args.threads or torch.get_num_threads()} torch thread(s); "
        f"load average {load_average} (1-minute).",
        "",
        f"One LD-Pruner round over every unit ({args.num_samples} calibration samples x {args.steps} steps, "
        f"{args.variants_per_batch} candidates per batch, the original's latents included in the time). "
        f"*Spearman* is the rank correlation of the scores with the {first} scores of the same model; "
        f"*same selected* counts the units that selection at {SELECTION_KEEP_MACS} of the MACs removes with both.",
        "",
        "| model | device | dtype | units | round (s) | candidates / s | Spearman vs "
        + first
        + " | same selected |"
        + (" peak GiB |" if any(r["peak_gib"] for r in rows) else ""),
        "|---|---|---|---:|---:|---:|---:|---:|" + ("---:|" if any(r["peak_gib"] for r in rows) else ""),
    ]
    for row in rows:
        line = (
            f"| {row['model']} | {args.device or resolve_device(None)} | {row['dtype']} | {row['units']} | {row['seconds']:.1f} "
            f"| {row['candidates_per_second']:.2f} | {row['spearman_vs_first']:.3f} | {row['same_selected']} of {row['selected']} |"
        )
        if row["peak_gib"]:
            line += f" {row['peak_gib']:.1f} |"
        lines.append(line)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models",
        default="digits-t2i,digits-ddpm",
        help=f"comma-separated bundled names or {SD15_SHAPE} (default: digits-t2i,digits-ddpm)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if a GPU is visible)")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated; the first is the reference")
    parser.add_argument("--num-samples", type=int, default=32, help="calibration samples (default 32, the CLI's)")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps (default 20, the CLI's)")
    parser.add_argument("--variants-per-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--section", default="scoring-precision", help="docs/results.md section key")
    parser.add_argument("--no-results-md", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    load_at_start = os.getloadavg()[0]
    rows = []
    for model in args.models.split(","):
        rows += measure(model.strip(), args)
    load_average = f"{load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    table = markdown(rows, args, " ".join(["python"] + sys.argv), load_average)
    print(table)
    if not args.no_results_md:
        write_section(args.section, table)


if __name__ == "__main__":
    main()
