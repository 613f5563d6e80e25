"""The timing protocol (diffprune.timing): warm-up first, then rounds whose order alternates, and comparisons made
round by round (median of per-round ratios, with IQR and a distribution-free 95% interval of the median)."""

import pytest

from diffprune.timing import (
    median_interval,
    per_round_ratios,
    per_round_savings,
    round_order,
    spread,
    time_interleaved,
    time_summary,
)


def test_every_function_is_warmed_up_before_rounds_that_alternate_the_order():
    calls = []
    functions = {label: (lambda label=label: calls.append(label)) for label in ("a", "b", "c")}
    timed = time_interleaved(functions, rounds=4, warmup=2, device="cpu")
    warmup, rounds = calls[:6], calls[6:]
    assert warmup == ["a", "a", "b", "b", "c", "c"]
    assert rounds == ["a", "b", "c", "c", "b", "a", "a", "b", "c", "c", "b", "a"]
    assert timed.order == [round_order(["a", "b", "c"], index) for index in range(4)]
    assert all(len(times) == 4 and min(times) > 0 for times in timed.times_ms.values())
    assert timed.peak_memory_mb == {}  # only CUDA has an allocator to ask


def test_two_functions_alternate_as_abba():
    calls = []
    time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=4, warmup=0)
    assert "".join(calls) == "abbaabba"


def test_comparisons_are_made_round_by_round():
    reference = [10.0, 12.0, 30.0]
    cut = [9.0, 4.0, 20.0]
    assert per_round_ratios(reference, cut) == pytest.approx([10 / 9, 3.0, 1.5])
    assert per_round_savings(reference, cut) == pytest.approx([1.0, 8.0, 10.0])
    # The median of per-round ratios (1.5), not the ratio of the medians (12 / 9).
    assert spread(per_round_ratios(reference, cut))["median"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="same rounds"):
        per_round_ratios(reference, cut[:2])


def test_median_interval_is_the_binomial_order_statistic_interval():
    assert median_interval([3.0, 1.0, 2.0, 5.0, 4.0]) is None  # 5 values: [min, max] covers 93.75% < 95%
    assert median_interval([float(v) for v in range(6)]) == (0.0, 5.0)  # 96.9%
    # n = 10: [x(2), x(9)] covers 97.9%, [x(3), x(8)] only 89.1%
    assert median_interval([float(v) for v in range(10, 0, -1)]) == (2.0, 9.0)
    values = [float(v) for v in range(100)]
    low, high = median_interval(values)
    assert low < 49.5 < high and high - low < 25  # narrows as rounds are added
    described = spread(values)
    assert described["ci95"] == [low, high] and described["rounds"] == 100
    assert described["iqr"] == [24.75, 74.25]


def test_time_summary_keeps_every_round():
    summary = time_summary([4.0, 1.0, 3.0, 2.0])
    assert summary["median_ms"] == 2.5 and summary["min_ms"] == 1.0 and summary["max_ms"] == 4.0
    assert summary["iqr_ms"] == pytest.approx(1.5) and summary["times_ms"] == [4.0, 1.0, 3.0, 2.0]
