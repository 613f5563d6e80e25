"""Measured latency of a pipeline: one UNet forward and one whole pipeline call, and speedups against a reference.

MACs predict a speedup; kernels, memory traffic and the parts outside the UNet decide what is realised. We
report both and their ratio (the realisation ratio), because "MACs fell but latency did not" is the most
common disappointment with structural pruning. Timing itself is diffprune.costs.measure_latency
(torch.utils.benchmark, CUDA-synchronised).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

from .costs import measure_latency
from .errors import DiffpruneError
from .generation import DEFAULT_STEPS, generate, takes_prompts
from .unet_inputs import DEFAULT_TEXT_LENGTH, example_inputs, move_inputs

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class LatencySettings:
    batch_size: int = 1
    runs: int = 5
    warmup: int = 2
    num_inference_steps: int = DEFAULT_STEPS  # steps of the timed pipeline call
    compile: bool = False  # torch.compile the UNet (warm-up then includes compilation)
    measure_unet: bool = True
    measure_pipeline: bool = True

    def __post_init__(self):
        if self.batch_size < 1:
            raise DiffpruneError("--batch-size must be at least 1")
        if self.runs < 1 or self.warmup < 0:
            raise DiffpruneError("--latency-runs must be at least 1 and --latency-warmup at least 0")
        if self.num_inference_steps < 1:
            raise DiffpruneError("--steps must be at least 1")

    def as_dict(self) -> dict:
        return asdict(self)


def torch_dtype(name: str | None, device: str | torch.device) -> torch.dtype | None:
    """fp32 / fp16 / bf16 (None keeps the pipeline's dtype); half precision on a CPU is refused."""
    if name is None:
        return None
    if name not in DTYPES:
        raise DiffpruneError(f"unknown --dtype {name!r}; choose one of {', '.join(DTYPES)}")
    if name == "fp16" and torch.device(device).type == "cpu":
        raise DiffpruneError("fp16 needs a GPU (--device cuda); on a CPU use --dtype fp32 or bf16")
    return DTYPES[name]


def check_device(device: str) -> None:
    kind = torch.device(device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise DiffpruneError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")


@contextmanager
def compiled_unet(pipeline, enabled: bool):
    """The pipeline with its UNet wrapped by torch.compile while inside; the original comes back afterwards."""
    if not enabled:
        yield pipeline.unet
        return
    original = pipeline.unet
    pipeline.unet = torch.compile(original)
    try:
        yield pipeline.unet
    finally:
        pipeline.unet = original


def text_length(pipeline) -> int:
    """The encoder sequence length the pipeline feeds its UNet (its tokenizer's length, else SD's 77)."""
    tokenizer = getattr(pipeline, "tokenizer", None)
    length = getattr(tokenizer, "model_max_length", None)
    return length if isinstance(length, int) and 0 < length < 10_000 else DEFAULT_TEXT_LENGTH


def measure_pipeline_latency(pipeline, settings: LatencySettings, prompt: str | None = None) -> dict:
    """{'unet_forward': ..., 'pipeline': ...}: median, spread, runs, batch size, dtype, peak memory on CUDA."""
    parameter = next(pipeline.unet.parameters())
    device = parameter.device
    common = {"batch_size": settings.batch_size, "dtype": str(parameter.dtype).removeprefix("torch."),
              "compiled": settings.compile}
    result = {}
    original_unet = pipeline.unet  # example_inputs reads its config; a compiled wrapper hides it
    with compiled_unet(pipeline, settings.compile) as unet, torch.inference_mode():
        if settings.measure_unet:
            inputs = example_inputs(original_unet, settings.batch_size, text_length=text_length(pipeline))
            inputs = move_inputs(inputs, device=device, dtype=parameter.dtype)
            timing = measure_latency(lambda: unet(**inputs), settings.warmup, settings.runs, device)
            result["unet_forward"] = {**timing, **common}
        if settings.measure_pipeline:
            prompts = [prompt or "a photograph"] * settings.batch_size if takes_prompts(pipeline) else None
            seeds = list(range(settings.batch_size))

            def call_pipeline():
                generate(pipeline, prompts=prompts, seeds=seeds, num_inference_steps=settings.num_inference_steps,
                         batch_size=settings.batch_size, show_progress=False)

            timing = measure_latency(call_pipeline, settings.warmup, settings.runs, device)
            result["pipeline"] = {**timing, **common, "num_inference_steps": settings.num_inference_steps}
    return result


def speedups(latency: dict, reference_latency: dict, macs: int | None, reference_macs: int | None) -> dict:
    """Measured speedup per timed part, the MACs-predicted speedup, and measured / predicted."""
    result = {}
    predicted = reference_macs / macs if macs and reference_macs else None
    result["predicted_from_macs"] = predicted
    for part in ("unet_forward", "pipeline"):
        if part in latency and part in reference_latency:
            measured = reference_latency[part]["median_ms"] / latency[part]["median_ms"]
            result[part] = measured
            result[f"realisation_ratio_{part}"] = measured / predicted if predicted else None
    return result
