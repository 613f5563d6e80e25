"""LD-Pruner scoring: candidates batched as gate variants vs one candidate at a time, same model, one run.

    .venv/bin/python eval/benchmark_batched_scoring.py [--model digits-t2i] [--num-samples 16] [--steps 10] [--threads N]

Checks that both give the same scores and writes the time ratio to docs/results.md, with wall-clock and process
CPU seconds (CPU time is less disturbed by other work on a shared machine) and the torch thread count.

What batching can gain (profiled with cProfile on digits-t2i, 16 x 10, one thread): both modes spend 97% of a
round inside the denoiser's forward; the pipeline's own call (prompt encoding, scheduler set-up, latents) is
about 3% of a one-at-a-time round. So the gain is the denoiser's efficiency at a larger batch: CPU time per
sample fell only from 7.1 to 4.3 ms between batch 32 (one candidate: 16 samples, guidance doubles them) and 256
(eight candidates), and to 1.3-1.4x for a whole round at one thread. The 3.44x of the first run of this benchmark
came from the older digits-t2i (24 units) at torch's default two threads: the same old code and model give 1.35x
of CPU time at one thread today, and 2.9x at two threads on a busy machine, where OpenMP's waits at every small
kernel slow the small batches of one-at-a-time scoring most. Compare runs at the same --threads.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_file import hardware, write_section  # noqa: E402

from diffprune.criteria import ScoringContext, get_criterion  # noqa: E402
from diffprune.criteria.score_store import ScoreStore  # noqa: E402
from diffprune.models.adapters import CalibrationSettings, adapter_for  # noqa: E402
from diffprune.models.loading import load_pipeline  # noqa: E402
from diffprune.models.prompts import default_prompts  # noqa: E402
from diffprune.structure.units import find_units  # noqa: E402


def timed_scores(pipeline, units, calibration, variants_per_batch):
    """Scores of one exhaustive round, its wall-clock seconds and this process's CPU seconds."""
    adapter = adapter_for(pipeline, calibration)
    context = ScoringContext(adapter, units, ScoreStore(None, {}), show_progress=False)
    context.reference_latents()  # computed once in both modes; not what is compared
    criterion = get_criterion("ld-pruner", allocation="exhaustive", variants_per_batch=variants_per_batch)
    started, cpu_started = time.perf_counter(), time.process_time()
    scores = criterion.score(context, units, [], 0)
    return scores, time.perf_counter() - started, time.process_time() - cpu_started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits-t2i")
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--variants-per-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipeline = load_pipeline(args.model)
    calibration = CalibrationSettings(
        num_samples=args.num_samples,
        num_inference_steps=args.steps,
        prompts=default_prompts(pipeline),
        show_progress=False,
        max_batch=args.num_samples * args.variants_per_batch,
    )
    units = find_units(pipeline.unet)
    naive, naive_seconds, naive_cpu = timed_scores(pipeline, units, calibration, 1)
    batched, batched_seconds, batched_cpu = timed_scores(pipeline, units, calibration, args.variants_per_batch)
    worst = max(abs(batched[n] - naive[n]) / max(abs(naive[n]), 1e-12) for n in naive)
    same_ranking = sorted(naive, key=naive.get) == sorted(batched, key=batched.get)
    command = " ".join(["python"] + sys.argv)
    table = f"""## LD-Pruner scoring: batched variants vs one at a time

Command: `{command}` · hardware: {hardware()}; {torch.get_num_threads()} torch thread(s)

| model | units | calibration | one at a time | batched ({args.variants_per_batch} variants) | speedup (wall) | speedup (CPU time) | max relative score difference | same ranking |
|---|---:|---|---:|---:|---:|---:|---:|---|
| {args.model} | {len(units)} | {args.num_samples} samples x {args.steps} steps of the pipeline's own sampler | {naive_seconds:.1f} s ({naive_cpu:.1f} s CPU) | {batched_seconds:.1f} s ({batched_cpu:.1f} s CPU) | **{naive_seconds / batched_seconds:.2f}x** | {naive_cpu / batched_cpu:.2f}x | {worst:.1e} | {same_ranking} |
"""
    print(table)
    write_section("batched-scoring", table)


if __name__ == "__main__":
    main()
