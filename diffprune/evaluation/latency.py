"""Measured latency of a pipeline: one UNet forward and one whole pipeline call, and speedups against a reference.

MACs predict a speedup; kernels, memory traffic and the parts outside the UNet decide what is realised. We
report both and their ratio (the realisation ratio), because "MACs fell but latency did not" is the most
common disappointment with structural pruning. Timing itself is diffprune.structure.costs.measure_latency
(torch.utils.benchmark, GPU-synchronised; 20 runs after warm-up on CUDA by default, median and IQR).

Timed as users run it: the whole call with the pipeline's own classifier-free guidance (text pipelines
double the UNet batch), and the UNet forward at the batch the pipeline hands it. A GPU UNet at batch 1 is
often bound by kernel launches rather than MACs, so the options that remove launch overhead are here too:
`compile` (torch.compile; on CUDA with mode="reduce-overhead", which replays CUDA graphs) and
`channels_last` (NHWC memory format, which cuDNN's convolutions prefer in half precision).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

from diffprune.devices import placement_of
from diffprune.errors import DiffpruneError
from diffprune.families import family_of
from diffprune.models.generation import DEFAULT_STEPS, generate, takes_prompts
from diffprune.structure.costs import measure_latency, pipeline_cost_inputs
from diffprune.structure.denoiser import denoiser_name, denoiser_of


@dataclass
class LatencySettings:
    batch_size: int = 1
    runs: int | None = None  # None: 20 on CUDA, 5 on a CPU (costs.DEFAULT_RUNS)
    warmup: int | None = None  # None: 5 on CUDA, 2 on a CPU; compilation happens during warm-up
    num_inference_steps: int = DEFAULT_STEPS  # steps of the timed pipeline call
    guidance_scale: float | None = None  # None: the pipeline's own default (SD: 7.5, so guidance is on)
    compile: bool = False  # torch.compile the UNet (CUDA: mode="reduce-overhead", i.e. CUDA graphs)
    channels_last: bool = False  # the UNet and its input in channels_last memory format
    measure_unet: bool = True
    measure_pipeline: bool = True

    def __post_init__(self):
        if self.batch_size < 1:
            raise DiffpruneError("`latency.batch_size` must be at least 1")
        if (self.runs is not None and self.runs < 1) or (self.warmup is not None and self.warmup < 0):
            raise DiffpruneError("`latency.runs` must be at least 1 and `latency.warmup` at least 0")
        if self.num_inference_steps < 1:
            raise DiffpruneError("`latency.num_inference_steps` must be at least 1")

    def as_dict(self) -> dict:
        return asdict(self)


def compile_mode(device: torch.device) -> str:
    """CUDA graphs remove the per-kernel launch cost that dominates small-batch GPU forwards; CPUs have none."""
    return "reduce-overhead" if device.type == "cuda" else "default"


@contextmanager
def compiled_denoiser(pipeline, enabled: bool, mode: str | None = None):
    """The pipeline with its denoiser wrapped by torch.compile while inside; the original comes back afterwards."""
    name = denoiser_name(pipeline)
    original = getattr(pipeline, name)
    if not enabled:
        yield original
        return
    compiled = torch.compile(original, mode=mode or compile_mode(placement_of(original).device))
    setattr(pipeline, name, compiled)
    try:
        yield compiled
    finally:
        setattr(pipeline, name, original)


@contextmanager
def channels_last_unet(unet, enabled: bool):
    """The UNet's weights in channels_last while inside, back in the default (contiguous) format afterwards."""
    if not enabled:
        yield unet
        return
    unet.to(memory_format=torch.channels_last)
    try:
        yield unet
    finally:
        unet.to(memory_format=torch.contiguous_format)


def pipeline_guidance_scale(pipeline, requested: float | None) -> float | None:
    """The guidance scale a call uses: the requested one, else the default of the pipeline's __call__."""
    if requested is not None:
        return requested
    parameter = inspect.signature(pipeline.__call__).parameters.get("guidance_scale")
    return parameter.default if parameter is not None and isinstance(parameter.default, (int, float)) else None


def default_condition(pipeline) -> str:
    """What a timed call is conditioned on: a short prompt, or a class-conditional model's first default class."""
    from diffprune.models.generation import CLASS_CONDITIONAL_IMAGE, pipeline_family
    from diffprune.models.prompts import default_prompts

    return default_prompts(pipeline)[0] if pipeline_family(pipeline) == CLASS_CONDITIONAL_IMAGE else "a photograph"


def unet_batch_size(pipeline, settings: LatencySettings) -> int:
    """The batch one UNet call sees: doubled by classifier-free guidance (unconditional + conditional halves)."""
    guidance = pipeline_guidance_scale(pipeline, settings.guidance_scale)
    guided = takes_prompts(pipeline) and guidance is not None and guidance > 1
    denoiser = denoiser_of(pipeline)
    guided = guided and denoiser.config.get("time_cond_proj_dim") is None  # guidance-distilled (LCM): one pass
    guided = guided and family_of(denoiser).guidance == "batched"  # FLUX-dev: guidance is an input, one pass
    return settings.batch_size * (2 if guided else 1)


def measure_pipeline_latency(pipeline, settings: LatencySettings, prompt: str | None = None) -> dict:
    """{'unet_forward': ..., 'pipeline': ...}: median, IQR, runs, batch sizes, dtype, peak memory on CUDA."""
    placement = placement_of(denoiser_of(pipeline))
    common = {
        "batch_size": settings.batch_size,
        "dtype": str(placement.dtype).removeprefix("torch."),
        "compiled": settings.compile,
        "channels_last": settings.channels_last,
    }
    if settings.compile:
        common["compile_mode"] = compile_mode(placement.device)
    result = {}
    original_unet = denoiser_of(pipeline)  # example inputs read its config; a compiled wrapper hides it
    batch = unet_batch_size(pipeline, settings)
    with (
        channels_last_unet(original_unet, settings.channels_last),
        compiled_denoiser(pipeline, settings.compile) as unet,
        torch.inference_mode(),
    ):
        if settings.measure_unet:
            inputs = pipeline_cost_inputs(pipeline, batch)
            if settings.channels_last and "sample" in inputs:
                inputs["sample"] = inputs["sample"].contiguous(memory_format=torch.channels_last)
            timing = measure_latency(lambda: unet(**inputs), settings.warmup, settings.runs, placement.device)
            result["unet_forward"] = {**timing, **common, "unet_batch_size": batch}
        if settings.measure_pipeline:
            prompts = [prompt or default_condition(pipeline)] * settings.batch_size if takes_prompts(pipeline) else None
            seeds = list(range(settings.batch_size))

            def call_pipeline():
                generate(
                    pipeline,
                    prompts=prompts,
                    seeds=seeds,
                    num_inference_steps=settings.num_inference_steps,
                    guidance_scale=settings.guidance_scale,
                    batch_size=settings.batch_size,
                    show_progress=False,
                )

            timing = measure_latency(call_pipeline, settings.warmup, settings.runs, placement.device)
            result["pipeline"] = {
                **timing,
                **common,
                "num_inference_steps": settings.num_inference_steps,
                "guidance_scale": pipeline_guidance_scale(pipeline, settings.guidance_scale),
            }
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
