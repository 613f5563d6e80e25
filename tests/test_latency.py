"""Latency of the UNet forward and of whole pipeline calls, and speedups against a reference."""

import pytest
import torch
from tiny_models import tiny_sd_pipeline

from diffprune.devices import torch_dtype
from diffprune.errors import DiffpruneError
from diffprune.evaluation.latency import LatencySettings, compiled_denoiser, measure_pipeline_latency, speedups


def test_report_fields_are_present_and_positive():
    pipeline = tiny_sd_pipeline()
    report = measure_pipeline_latency(pipeline, LatencySettings(batch_size=2, runs=2, warmup=0, num_inference_steps=1))
    assert set(report) == {"unet_forward", "pipeline"}
    for timing in report.values():
        assert timing["median_ms"] > 0 and timing["min_ms"] > 0 and timing["max_ms"] >= timing["min_ms"]
        assert timing["iqr_ms"] >= 0 and timing["runs"] == 2 and timing["warmup"] == 0
        assert timing["batch_size"] == 2 and timing["dtype"] == "float32" and timing["device"] == "cpu"
    assert report["pipeline"]["num_inference_steps"] == 1


def test_speedup_and_realisation_ratio():
    fast = {"unet_forward": {"median_ms": 5.0}, "pipeline": {"median_ms": 50.0}}
    slow = {"unet_forward": {"median_ms": 10.0}, "pipeline": {"median_ms": 80.0}}
    result = speedups(fast, slow, macs=50, reference_macs=100)
    assert result["predicted_from_macs"] == 2.0
    assert result["unet_forward"] == 2.0 and result["realisation_ratio_unet_forward"] == 1.0
    assert result["pipeline"] == 1.6 and result["realisation_ratio_pipeline"] == pytest.approx(0.8)


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
