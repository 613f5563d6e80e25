"""How many timing rounds does a speedup need on a CPU? The spread of per-round speedups on the bundled models.

For each bundled model, the original and a cut to about 0.7 of its denoiser's MACs (largest units first, as
eval/benchmark_sd15_speedup.py cuts; what matters here is the timing noise next to the difference, not which units
go) are timed together by diffprune.evaluation.latency.measure_latencies (both warmed up, then rounds in alternating
order) with many rounds, as `diffprune compare` and the demo time them: the denoiser forward at the batch the
pipeline hands it, and whole pipeline calls (10 steps, as the demo's). The table gives, per part, the time one round
costs, the speedup (median of per-round ratios), the interquartile range of the per-round ratios, and the 95%
confidence interval of the median when only the first n rounds are used: the defaults in
diffprune.evaluation.latency (DEFAULT_ROUNDS) are the smallest n whose interval is narrow next to the speedup's
distance from 1. It also reports whether the pipeline saved more than its denoiser calls can (the bound that
`speedups` checks). Writes the docs/results.md section latency-protocol.

    python eval/benchmark_latency_protocol.py --rounds 30
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_sd15_speedup import greedy_units_for_macs  # noqa: E402
from results_file import hardware, write_section  # noqa: E402

from diffprune.evaluation.latency import LatencySettings, measure_latencies, speedups  # noqa: E402
from diffprune.models.components import with_denoiser  # noqa: E402
from diffprune.models.loading import load_pipeline  # noqa: E402
from diffprune.models.prompts import default_prompts  # noqa: E402
from diffprune.structure.costs import count_macs, pipeline_cost_inputs  # noqa: E402
from diffprune.structure.denoiser import denoiser_of  # noqa: E402
from diffprune.structure.surgery import remove_units  # noqa: E402
from diffprune.structure.units import find_units  # noqa: E402
from diffprune.timing import per_round_ratios, spread  # noqa: E402

PARTS = {"denoiser_forward": "denoiser forward", "pipeline": "pipeline call"}


def measure(name: str, args) -> dict:
    original = load_pipeline(name)
    original.set_progress_bar_config(disable=True)
    inputs, denoiser = pipeline_cost_inputs(original), denoiser_of(original)
    total = count_macs(denoiser, inputs)
    removed = greedy_units_for_macs(find_units(denoiser, inputs), total, args.keep)
    cut = with_denoiser(original, remove_units(denoiser, removed))
    settings = LatencySettings(runs=args.rounds, warmup=args.warmup, num_inference_steps=args.steps)
    started = time.perf_counter()
    prompt = default_prompts(original)[0] if getattr(original, "tokenizer", None) is not None else None
    latencies = measure_latencies({"original": original, "cut": cut}, settings, prompt)
    seconds = time.perf_counter() - started
    macs = count_macs(denoiser_of(cut), inputs)
    result = {"model": name, "removed": removed, "macs_kept": macs / total, "seconds": seconds, "parts": {}}
    result["speedup"] = speedups(latencies["cut"], latencies["original"], macs, total)
    for part in PARTS:
        reference, times = latencies["original"][part]["times_ms"], latencies["cut"][part]["times_ms"]
        ratios = per_round_ratios(reference, times)
        result["parts"][part] = {
            "original_ms": latencies["original"][part]["median_ms"],
            "cut_ms": latencies["cut"][part]["median_ms"],
            "round_seconds": (sum(reference) + sum(times)) / len(times) / 1000,
            "all_rounds": spread(ratios),
            "first_rounds": {n: spread(ratios[:n]) for n in args.first if n <= len(ratios)},
        }
    result["denoiser_calls"] = latencies["cut"]["pipeline"]["denoiser_calls"]
    return result


def table(results: list[dict], first: list[int]) -> str:
    header = "| model | part | ms (original / cut) | one round (s) | speedup (IQR) | "
    header += " | ".join(f"95% CI, first {n} rounds" for n in first) + " |"
    lines = [header, "|---|---|---|---:|---|" + "---|" * len(first)]
    for result in results:
        for part, label in PARTS.items():
            entry = result["parts"][part]
            everything = entry["all_rounds"]
            cells = []
            for n in first:
                interval = entry["first_rounds"].get(n, {}).get("ci95")
                cells.append(f"{interval[0]:.3f}-{interval[1]:.3f}" if interval else "–")
            lines.append(
                f"| {result['model']} | {label} | {entry['original_ms']:.1f} / {entry['cut_ms']:.1f} "
                f"| {entry['round_seconds']:.2f} | {everything['median']:.3f} ({everything['iqr'][0]:.3f}-"
                f"{everything['iqr'][1]:.3f}) | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def bound_lines(results: list[dict]) -> list[str]:
    lines = []
    for result in results:
        bound = result["speedup"]["denoiser_bound"]
        if not bound.get("checked"):
            lines.append(f"- {result['model']}: bound not checked ({bound.get('why')})")
            continue
        verdict = "a measurement problem" if bound.get("problem") else "consistent"
        lines.append(
            f"- {result['model']}: the pipeline saved {bound['pipeline_saved_ms']:.1f} ms per call; its "
            f"{bound['denoiser_calls']} denoiser calls can save {bound['denoiser_calls_can_save_ms']:.1f} ms "
            f"(at most {bound['denoiser_calls_can_save_at_most_ms']:.1f}): {verdict}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="digits-t2i,digits-sd3,digits-ddpm,tones-audio")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--steps", type=int, default=10, help="denoising steps of a timed pipeline call (the demo times 10)"
    )
    parser.add_argument("--keep", type=float, default=0.7, help="fraction of the denoiser's MACs the cut keeps")
    parser.add_argument("--first", default="6,10,15,20,30", help="round counts whose 95%% CI the table shows")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default="eval/results/latency_protocol.json")
    parser.add_argument("--no-results-md", action="store_true")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.first = [int(n) for n in args.first.split(",")]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    results = []
    for name in args.models.split(","):
        results.append(measure(name.strip(), args))
        print(f"{name}: {results[-1]['seconds']:.0f} s", flush=True)
    text = table(results, args.first)
    print(text)
    print("\n".join(bound_lines(results)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    if not args.no_results_md:
        command = "python eval/benchmark_latency_protocol.py " + " ".join(sys.argv[1:])
        section = "\n".join(
            [
                "## Latency protocol: rounds needed on a CPU",
                "",
                f"Command: `{command}` · {hardware()}, {torch.get_num_threads()} torch threads · load average "
                f"{load:.1f} at start, {os.getloadavg()[0]:.1f} at end (1-minute) · {time.perf_counter() - started:.0f} s",
                "",
                f"Each bundled model and a cut to about {args.keep} of its denoiser's MACs (largest units first), timed "
                f"together in alternating rounds after {args.warmup} warm-up calls each; pipeline calls of "
                f"{args.steps} steps. Speedup: median of per-round ratios, with their IQR; the last columns are the "
                "95% confidence interval of that median from the first n rounds only.",
                "",
                text,
                "",
                *bound_lines(results),
            ]
        )
        write_section("latency-protocol", section)


if __name__ == "__main__":
    main()
