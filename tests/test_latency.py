"""Latency of the UNet forward and of whole pipeline calls, and speedups against a reference."""

import json
import statistics

import pytest
import torch
from tiny_models import tiny_sd_pipeline

from diffprune.devices import torch_dtype
from diffprune.errors import DiffpruneError
from diffprune.evaluation.html_report import metrics_table
from diffprune.evaluation.latency import (
    LatencySettings,
    compiled_denoiser,
    measure_latencies,
    measure_pipeline_latency,
    speedups,
)
from diffprune.evaluation.tables import format_table, summary_row


def test_report_fields_are_present_and_positive(sd):
    pipeline = sd
    report = measure_pipeline_latency(pipeline, LatencySettings(batch_size=2, runs=2, warmup=0, num_inference_steps=1))
    assert set(report) == {"denoiser_forward", "pipeline"}
    for timing in report.values():
        assert timing["median_ms"] > 0 and timing["min_ms"] > 0 and timing["max_ms"] >= timing["min_ms"]
        assert (
            0 <= timing["iqr_ms"] <= timing["max_ms"] - timing["min_ms"]
            and timing["runs"] == 2
            and len(timing["times_ms"]) == 2
        )
        assert timing["batch_size"] == 2 and timing["dtype"] == "float32" and timing["device"] == "cpu"
    assert report["denoiser_forward"]["warmup"] == 0
    assert report["pipeline"]["warmup"] == 1  # the call that counts the denoiser calls warms up too
    assert report["pipeline"]["num_inference_steps"] == 1


def test_models_are_timed_in_alternating_rounds_and_denoiser_calls_are_counted():
    first, second = tiny_sd_pipeline(), tiny_sd_pipeline()
    calls = []
    for label, pipeline in (("a", first), ("b", second)):
        pipeline.unet.register_forward_pre_hook(lambda module, args, label=label: calls.append(label))
    steps = 3
    report = measure_latencies(
        {"a": first, "b": second}, LatencySettings(runs=4, warmup=2, num_inference_steps=steps), prompt="a 1"
    )
    forward, whole = calls[:12], calls[12:]
    # Denoiser forwards: both warmed up, then rounds a b, b a, a b, b a.
    assert "".join(forward) == "aabb" + "abbaabba"
    # Whole calls (each makes `steps` denoiser calls): one counting call each (the first warm-up), one more warm-up
    # each, then the same alternating rounds.
    per_call = "".join(whole[index] for index in range(0, len(whole), steps))
    assert per_call == "ab" + "ab" + "abbaabba" and len(whole) == steps * len(per_call)
    for label in ("a", "b"):
        timing = report[label]["pipeline"]
        assert timing["denoiser_calls"] == steps and timing["warmup"] == 2 and len(timing["times_ms"]) == 4
        # classifier-free guidance: every call at twice the images, the batch the denoiser forward is timed at
        assert timing["denoiser_call_batch_sizes"] == [report[label]["denoiser_forward"]["denoiser_batch_size"]] == [2]


def timings(reference_ms: list[float], cut_ms: list[float], calls: int = 20, batch: int = 2) -> dict:
    """A latency report of one model as measure_latencies writes it (only the fields speedups reads)."""
    return {
        "denoiser_forward": {"times_ms": reference_ms[0], "denoiser_batch_size": batch},
        "pipeline": {"times_ms": reference_ms[1], "denoiser_calls": calls, "denoiser_call_batch_sizes": [batch]},
    }, {
        "denoiser_forward": {"times_ms": cut_ms[0], "denoiser_batch_size": batch},
        "pipeline": {"times_ms": cut_ms[1], "denoiser_calls": calls, "denoiser_call_batch_sizes": [batch]},
    }


def test_speedup_is_the_median_of_per_round_ratios_with_its_spread():
    reference, cut = timings(
        [[10.0, 12.0, 30.0, 10.0, 11.0, 10.0], [400.0, 410.0, 600.0, 405.0, 400.0, 420.0]],
        [[9.0, 4.0, 20.0, 5.0, 5.5, 8.0], [300.0, 310.0, 500.0, 300.0, 310.0, 330.0]],
    )
    result = speedups(cut, reference, macs=50, reference_macs=100)
    ratios = sorted([10 / 9, 3.0, 1.5, 2.0, 2.0, 1.25])
    assert result["denoiser_forward"] == pytest.approx(
        (ratios[2] + ratios[3]) / 2
    )  # not 10.5 / 6.5, the medians' ratio
    assert result["ratios"]["denoiser_forward"]["ci95"] == pytest.approx([ratios[0], ratios[-1]])
    assert result["predicted_from_macs"] == 2.0
    assert result["realisation_ratio_denoiser_forward"] == pytest.approx(result["denoiser_forward"] / 2)
    # 20 calls x at least ~1 ms saved per call covers the ~100 ms the pipeline saved: a consistent measurement
    assert result["measurement_problem"] is None and result["denoiser_bound"]["checked"]
    assert result["pipeline"] == pytest.approx(statistics.median([4 / 3, 41 / 31, 1.2, 405 / 300, 40 / 31, 42 / 33]))
    row = summary_row("cut", {"speedup": result})
    assert row["speedup"] == result["pipeline"] and row["denoiser_speedup"] == result["denoiser_forward"]
    assert row["timing_problem"] is None and "note" not in format_table([row])


def test_a_pipeline_that_saves_more_than_its_denoiser_calls_can_is_flagged_not_reported():
    # The demo's digits-sd3 as the issue saw it: the denoiser 1.6 ms faster, 20 calls, the pipeline 183 ms faster.
    reference, cut = timings(
        [[10.0, 10.2, 9.9, 10.1, 10.0, 10.3, 10.1, 9.8], [478.0, 470.0, 490.0, 480.0, 475.0, 485.0, 479.0, 481.0]],
        [[8.4, 8.5, 8.3, 8.6, 8.4, 8.5, 8.4, 8.3], [296.0, 290.0, 300.0, 295.0, 297.0, 299.0, 294.0, 296.0]],
    )
    result = speedups(cut, reference, macs=70, reference_macs=100)
    assert result["pipeline"] is None and result["realisation_ratio_pipeline"] is None
    assert result["ratios"]["pipeline"]["median"] > 1.5  # what was measured stays in the report
    bound = result["denoiser_bound"]
    assert bound["checked"] and bound["denoiser_calls"] == 20
    assert bound["pipeline_saved_ms"] > 150 > 40 > bound["denoiser_calls_can_save_at_most_ms"]
    assert "at most" in result["measurement_problem"]
    row = summary_row("cut", {"speedup": result})
    assert row["speedup"] is None and row["timing_problem"] == result["measurement_problem"]
    table = format_table([row])
    assert "see note" in table and "note: cut: pipeline speedup not reported, a measurement problem" in table
    page = metrics_table(["model", "speedup", "timing_problem"], [row])
    assert 'class="note"' in page and "measurement problem" in page


def test_the_bound_is_not_checked_without_enough_rounds_or_comparable_calls():
    few = timings([[10.0] * 5, [400.0] * 5], [[9.9] * 5, [300.0] * 5])
    result = speedups(few[1], few[0], macs=None, reference_macs=None)
    assert not result["denoiser_bound"]["checked"] and result["measurement_problem"] is None
    assert "fewer than 6 rounds" in result["denoiser_bound"]["why"]
    other_steps = timings([[10.0] * 6, [400.0] * 6], [[9.9] * 6, [300.0] * 6])
    other_steps[1]["pipeline"]["denoiser_calls"] = 10
    assert "different numbers" in speedups(other_steps[1], other_steps[0], None, None)["denoiser_bound"]["why"]


def test_compiled_denoiser_is_put_back():
    pipeline = tiny_sd_pipeline()
    original = pipeline.unet
    with compiled_denoiser(pipeline, enabled=True) as unet:
        assert unet is not original and pipeline.unet is unet
    assert pipeline.unet is original


def test_bad_latency_settings():
    with pytest.raises(DiffpruneError, match="fp16 needs a GPU"):
        torch_dtype("fp16", "cpu")
    assert torch_dtype("bf16", "cpu") == torch.bfloat16 and torch_dtype(None, "cpu") is None
    with pytest.raises(DiffpruneError, match="`latency.batch_size`"):
        LatencySettings(batch_size=0)
    with pytest.raises(DiffpruneError, match="`latency.runs`"):
        LatencySettings(runs=0)


def test_outputs_of_a_cuda_graph_denoiser_are_copied_for_schedulers_that_keep_them():
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

    from diffprune.evaluation.latency import cloned

    sample = torch.ones(2, 4, 8, 8)
    for output in ((sample,), UNet2DConditionOutput(sample=sample)):
        copy = cloned(output)
        assert type(copy) is type(output)
        copied = copy[0]
        assert torch.equal(copied, sample) and copied.data_ptr() != sample.data_ptr()


def test_reports_saved_with_the_old_unet_forward_names_read_as_before():
    reference, cut = timings(
        [[10.0, 12.0, 30.0, 10.0, 11.0, 10.0], [400.0, 410.0, 600.0, 405.0, 400.0, 420.0]],
        [[9.0, 4.0, 20.0, 5.0, 5.5, 8.0], [300.0, 310.0, 500.0, 300.0, 310.0, 330.0]],
    )

    def saved_before(report):  # as diffprune wrote them when it said `unet` for any denoiser
        text = (
            json.dumps(report)
            .replace("denoiser_forward", "unet_forward")
            .replace("denoiser_batch_size", "unet_batch_size")
        )
        return json.loads(text)

    current = speedups(cut, reference, macs=50, reference_macs=100)
    assert speedups(saved_before(cut), saved_before(reference), macs=50, reference_macs=100) == current
    old_row = {"speedup": saved_before(current), "latency": saved_before(cut)}
    assert summary_row("cut", old_row) == summary_row("cut", {"speedup": current, "latency": cut})
    assert summary_row("cut", old_row)["denoiser_speedup"] == current["denoiser_forward"] is not None
