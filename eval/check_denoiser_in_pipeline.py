"""Does a pipeline save what its denoiser calls save? For a bundled model and a cut to about 0.7 of its MACs (as
eval/benchmark_latency_protocol.py cuts), time the denoiser forward alone and whole pipeline calls, interleaved
(diffprune.timing.time_interleaved), and time each denoiser call inside the pipeline calls with forward hooks. When
the latency report flags a pipeline that saved more than its denoiser calls can, this tells a real effect (the
denoiser running differently inside the pipeline) from a noisy set of rounds. CPU only: the hooks read the clock
without synchronising a GPU.

    python eval/check_denoiser_in_pipeline.py [--model digits-ddpm] [--rounds 20] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_sd15_speedup import greedy_units_for_macs  # noqa: E402

from diffprune.models.components import with_denoiser  # noqa: E402
from diffprune.models.loading import load_pipeline  # noqa: E402
from diffprune.structure.costs import count_macs, pipeline_cost_inputs  # noqa: E402
from diffprune.structure.denoiser import denoiser_of  # noqa: E402
from diffprune.structure.surgery import remove_units  # noqa: E402
from diffprune.structure.units import find_units  # noqa: E402
from diffprune.timing import time_interleaved  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits-ddpm")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--keep", type=float, default=0.7)
    args = parser.parse_args()
    original = load_pipeline(args.model)
    inputs, denoiser = pipeline_cost_inputs(original), denoiser_of(original)
    removed = greedy_units_for_macs(find_units(denoiser, inputs), count_macs(denoiser, inputs), args.keep)
    models = {"original": original, "cut": with_denoiser(original, remove_units(denoiser, removed))}
    inside_ms = {label: [] for label in models}  # every denoiser call made inside a pipeline call
    functions, hooks = {}, []
    for label, pipeline in models.items():
        pipeline.set_progress_bar_config(disable=True)
        model, started = denoiser_of(pipeline), []
        hooks.append(model.register_forward_pre_hook(lambda *_, started=started: started.append(time.perf_counter())))
        hooks.append(
            model.register_forward_hook(
                lambda *_, label=label, started=started: inside_ms[label].append(
                    1000 * (time.perf_counter() - started.pop())
                )
            )
        )
        functions[f"{label} pipeline"] = lambda pipeline=pipeline: pipeline(
            num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0), output_type="np"
        )
    denoisers = {label: denoiser_of(pipeline) for label, pipeline in models.items()}
    with torch.no_grad():
        pipelines = time_interleaved(functions, args.rounds, args.warmup)
        for hook in hooks:  # the forwards timed alone are not calls inside a pipeline
            hook.remove()
        alone = time_interleaved(
            {label: lambda model=model: model(**inputs) for label, model in denoisers.items()}, args.rounds, args.warmup
        )
    medians = {
        label: {
            "alone": statistics.median(alone.times_ms[label]),
            "inside": statistics.median(inside_ms[label]),
            "pipeline": statistics.median(pipelines.times_ms[f"{label} pipeline"]),
        }
        for label in models
    }
    print(f"{args.model}, cut to {args.keep} of the MACs ({len(removed)} units), {args.rounds} interleaved rounds:")
    for label, row in medians.items():
        print(
            f"  {label}: denoiser forward {row['alone']:.1f} ms alone, {row['inside']:.1f} ms inside the pipeline; "
            f"pipeline call {row['pipeline']:.1f} ms"
        )
    saved_inside = medians["original"]["inside"] - medians["cut"]["inside"]
    print(
        f"  the pipeline saved {medians['original']['pipeline'] - medians['cut']['pipeline']:.1f} ms per call; its "
        f"{args.steps} denoiser calls saved {args.steps * saved_inside:.1f} ms inside it "
        f"({args.steps} x {medians['original']['alone'] - medians['cut']['alone']:.1f} ms alone)"
    )


if __name__ == "__main__":
    main()
