"""LD-Pruner scoring: candidates batched as gate variants vs one candidate at a time, same model, one run.

    .venv/bin/python eval/benchmark_batched_scoring.py [--model digits-t2i] [--num-samples 16] [--steps 10]

Checks that both give the same scores and writes the time ratio to docs/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import hardware, write_section  # noqa: E402

from diffprune.criteria import ScoringContext, get_criterion  # noqa: E402
from diffprune.criteria.score_store import ScoreStore  # noqa: E402
from diffprune.models.adapters import CalibrationSettings, adapter_for  # noqa: E402
from diffprune.models.loading import load_pipeline  # noqa: E402
from diffprune.models.prompts import default_prompts  # noqa: E402
from diffprune.structure.units import find_units  # noqa: E402


def timed_scores(pipeline, units, calibration, variants_per_batch):
    adapter = adapter_for(pipeline, calibration)
    context = ScoringContext(adapter, units, ScoreStore(None, {}), show_progress=False)
    context.reference_latents()  # computed once in both modes; not what is compared
    started = time.perf_counter()
    scores = get_criterion("ld-pruner", variants_per_batch=variants_per_batch).score(context, units, [], 0)
    return scores, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits-t2i")
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--variants-per-batch", type=int, default=8)
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    calibration = CalibrationSettings(
        num_samples=args.num_samples,
        num_inference_steps=args.steps,
        prompts=default_prompts(pipeline),
        show_progress=False,
        max_batch=args.num_samples * args.variants_per_batch,
    )
    units = find_units(pipeline.unet)
    naive, naive_seconds = timed_scores(pipeline, units, calibration, 1)
    batched, batched_seconds = timed_scores(pipeline, units, calibration, args.variants_per_batch)
    worst = max(abs(batched[n] - naive[n]) / max(abs(naive[n]), 1e-12) for n in naive)
    same_ranking = sorted(naive, key=naive.get) == sorted(batched, key=batched.get)
    command = " ".join(["python"] + sys.argv)
    table = f"""## LD-Pruner scoring: batched variants vs one at a time

Command: `{command}` · hardware: {hardware()}

| model | units | calibration | one at a time | batched ({args.variants_per_batch} variants) | speedup | max relative score difference | same ranking |
|---|---:|---|---:|---:|---:|---:|---|
| {args.model} | {len(units)} | {args.num_samples} samples x {args.steps} steps of the pipeline's own sampler | {naive_seconds:.1f} s | {batched_seconds:.1f} s | **{naive_seconds / batched_seconds:.2f}x** | {worst:.1e} | {same_ranking} |
"""
    print(table)
    write_section("batched-scoring", table)


if __name__ == "__main__":
    main()
