"""Timing that a comparison can trust: every timed function warmed up, then timed in alternating rounds.

Timing one model after the other, the original first, charges to the first whatever it pays alone (lazy
initialisation, allocator growth, cold caches, a busy moment of the machine), and that reads as speedup. Here
every function is warmed up first; then each round times every function once, in the given order in even rounds
and reversed in odd ones (A B, B A, A B, ... for two), so a drift of the machine falls on all of them alike. A
comparison is made per round (the reference's time over the other's in the same round) and summarised by the
median over rounds, with the interquartile range of the per-round values (how much one round varies) and a
distribution-free 95% confidence interval of the median (how well the rounds pin it down).

Each call is timed alone, the GPU synchronised before and after it, so a time covers the GPU work of that call and
nothing queued before it, with the process's own CPU threads (as users run). torch.utils.benchmark's Timer does
not fit here: its timeit makes two untimed calls before every timed one (which would break the alternation and
triple the cost of timing whole pipeline calls) and runs the statement on one CPU thread unless told otherwise.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch


@dataclass
class InterleavedTimes:
    """Per function: its times in milliseconds, one per round, in round order (index i is round i for all)."""

    times_ms: dict[str, list[float]]
    order: list[list[str]]  # the order the functions ran in, per round
    warmup: int
    peak_memory_mb: dict[str, float]  # CUDA: peak allocated memory over each function's calls; {} elsewhere


def round_order(labels: list[str], round_index: int) -> list[str]:
    """The given order in even rounds, reversed in odd ones (ABBA for two functions)."""
    return list(labels) if round_index % 2 == 0 else list(reversed(labels))


def time_interleaved(
    functions: dict[str, Callable[[], object]], rounds: int, warmup: int, device: str | torch.device = "cpu"
) -> InterleavedTimes:
    """Warm up every function `warmup` times, then time `rounds` rounds that call each function once, the order
    alternating between rounds. Returns every call's time, so comparisons can be made round by round."""
    if rounds < 1 or warmup < 0:
        raise ValueError("rounds must be at least 1 and warmup at least 0")
    device = torch.device(device)
    labels = list(functions)
    peak_memory_mb = dict.fromkeys(labels, 0.0)

    def tracked(label: str, call: Callable[[], object]) -> None:
        # The caching allocator counts at allocation time, on the host, so reading the peak needs no sync.
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        call()
        if device.type == "cuda":
            peak_memory_mb[label] = max(peak_memory_mb[label], torch.cuda.max_memory_allocated(device) / 2**20)

    for label in labels:
        for _ in range(warmup):
            tracked(label, functions[label])

    def timed(label: str) -> None:
        synchronize()
        started = time.perf_counter()
        functions[label]()
        synchronize()
        times_ms[label].append((time.perf_counter() - started) * 1000)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times_ms = {label: [] for label in labels}
    order = []
    for index in range(rounds):
        order.append(round_order(labels, index))
        for label in order[-1]:
            tracked(label, partial(timed, label))
    if device.type != "cuda":
        peak_memory_mb = {}
    return InterleavedTimes(times_ms, order, warmup, peak_memory_mb)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median, third quartile (all the value itself for a single value)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    first, _, third = statistics.quantiles(values, n=4, method="inclusive")
    return first, statistics.median(values), third


MIN_ROUNDS_FOR_INTERVAL = 6  # the smallest n whose [min, max] covers the median with 95%: 1 - 2 / 2**6 = 0.969


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval of the median: the order statistics x(k) and x(n+1-k) with the
    largest k whose binomial(n, 1/2) coverage is at least `confidence`; None when even [min, max] covers less
    (95%: fewer than 6 values)."""
    ordered = sorted(values)
    n = len(ordered)
    if 1 - 2 / 2**n < confidence:
        return None
    k = 1
    while k + 1 <= n // 2:
        # coverage of [x(k+1), x(n-k)]: P(k+1 <= B <= n-k-1) for B ~ binomial(n, 1/2)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        if 1 - 2 * tail < confidence:
            break
        k += 1
    return ordered[k - 1], ordered[n - k]


def spread(values: list[float]) -> dict:
    """Median, interquartile range and 95% confidence interval of the median (None under 6 values) of per-round
    values."""
    first, median, third = quartiles(values)
    interval = median_interval(values)
    return {
        "median": median,
        "iqr": [first, third],
        "ci95": list(interval) if interval else None,
        "rounds": len(values),
    }


def per_round_ratios(reference_ms: list[float], times_ms: list[float]) -> list[float]:
    """Speedup in each round: the reference's time over the other's time in the same round."""
    _check_rounds(reference_ms, times_ms)
    return [reference / time for reference, time in zip(reference_ms, times_ms, strict=True)]


def per_round_savings(reference_ms: list[float], times_ms: list[float]) -> list[float]:
    """Milliseconds saved in each round: the reference's time minus the other's in the same round."""
    _check_rounds(reference_ms, times_ms)
    return [reference - time for reference, time in zip(reference_ms, times_ms, strict=True)]


def _check_rounds(reference_ms: list[float], times_ms: list[float]) -> None:
    if len(reference_ms) != len(times_ms) or not times_ms:
        raise ValueError(
            f"per-round comparison needs times of the same rounds ({len(reference_ms)} and {len(times_ms)} given)"
        )


def time_summary(times_ms: list[float]) -> dict:
    """Median, IQR, min and max of one function's times, and the times themselves (in round order)."""
    first, median, third = quartiles(times_ms)
    return {
        "median_ms": median,
        "iqr_ms": third - first,
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
        "runs": len(times_ms),
        "times_ms": list(times_ms),
    }
