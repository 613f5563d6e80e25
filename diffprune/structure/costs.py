"""What a UNet costs: parameters, multiply-accumulates (MACs) of one forward, and measured latency.

MACs come from torch.utils.flop_counter (FLOPs / 2), per module. PyTorch registers no formula for the CPU
flash-attention kernel that scaled_dot_product_attention dispatches to, so we add one (the same formula
PyTorch uses for the CUDA kernels); otherwise attention would be free on CPU and missing from the budget.
Inputs given by a caller are put on the model's device and dtype first (devices.place), so costs of a CUDA or
bf16 model can be counted with the same inputs as those of a CPU fp32 one.
"""

from __future__ import annotations

import torch
from torch.utils import flop_counter

from diffprune.devices import place
from diffprune.families import example_inputs, family_of
from diffprune.structure.denoiser import denoiser_of
from diffprune.timing import time_interleaved, time_summary


def _custom_flop_formulas() -> dict:
    formulas = {}
    cpu_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_flash is not None and cpu_flash not in flop_counter.flop_registry:
        # flop_counter hands formulas the op's inputs' shapes; sdpa_flop_count expects (q, k, v) shapes.
        formulas[cpu_flash] = lambda q, k, v, *a, out_shape=None, **kw: flop_counter.sdpa_flop_count(q, k, v)
    return formulas


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def macs_by_module(denoiser: torch.nn.Module, inputs: dict | None = None) -> dict[str, int]:
    """MACs of one forward per module path ('' is the whole model)."""
    inputs = place(inputs, denoiser) if inputs else example_inputs(denoiser)
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=_custom_flop_formulas())
    with torch.no_grad(), counter:
        denoiser(**inputs)
    root = type(denoiser).__name__
    result = {}
    for path, counts in counter.get_flop_counts().items():
        if path == "Global":
            continue
        name = "" if path == root else path.removeprefix(root + ".")
        result[name] = sum(counts.values()) // 2
    return result


def count_macs(denoiser: torch.nn.Module, inputs: dict | None = None) -> int:
    """MACs of one denoiser forward (batch and resolution as given by `inputs`, default batch 1 at sample size)."""
    return macs_by_module(denoiser, inputs).get("", 0)


def pipeline_cost_inputs(pipeline, batch_size: int = 1) -> dict:
    """One denoiser forward as the pipeline makes it (its tokenizer's length for text models, a transformer
    pipeline's latent size), batch 1 unless asked."""
    latent_size = getattr(pipeline, "default_sample_size", None)
    denoiser = denoiser_of(pipeline)
    text_length = family_of(denoiser).text_length(pipeline)
    return example_inputs(denoiser, batch_size, text_length=text_length, latent_size=latent_size)


# On a GPU one forward takes milliseconds and the launch queue, clocks and allocator vary run to run, so the
# median needs many runs; on a CPU one SD-sized forward takes seconds and a few runs suffice.
DEFAULT_RUNS = {"cuda": 20, "cpu": 5}
DEFAULT_WARMUP = {"cuda": 5, "cpu": 2}


def measure_latency(
    function, warmup: int | None = None, runs: int | None = None, device: str | torch.device = "cpu"
) -> dict:
    """Median and interquartile range of `function()` wall time over `runs` calls after `warmup` calls
    (defaults: 20 runs after 5 warm-up calls on CUDA, 5 after 2 on a CPU); on CUDA also the peak memory of its
    calls. Timing is diffprune.timing's (GPU-synchronised, one call at a time); to compare two functions, time
    them together with diffprune.timing.time_interleaved instead of calling this twice.
    """
    device = torch.device(device)
    kind = "cuda" if device.type == "cuda" else "cpu"
    warmup = DEFAULT_WARMUP[kind] if warmup is None else warmup
    runs = DEFAULT_RUNS[kind] if runs is None else runs
    timed = time_interleaved({"function": function}, runs, warmup, device)
    report = {**time_summary(timed.times_ms["function"]), "warmup": warmup, "device": str(device)}
    if "function" in timed.peak_memory_mb:
        report["peak_memory_mb"] = timed.peak_memory_mb["function"]
    return report
