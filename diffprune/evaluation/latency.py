"""Measured latency of pipelines: one denoiser forward and one whole pipeline call, and speedups against a reference.

MACs predict a speedup; kernels, memory traffic and the parts outside the denoiser decide what is realised. We
report both and their ratio (the realisation ratio), because "MACs fell but latency did not" is the most
common disappointment with structural pruning.

The models of one report are timed together (diffprune.timing): every model warmed up, then rounds that time each
model once, the order reversed every other round, so whatever the machine does meanwhile falls on all of them
alike. A speedup is the median of the per-round ratios against the reference, with their IQR and the 95%
confidence interval of the median. Timed one after the other, the original first, the demo once showed pipelines
that saved more time than their denoiser calls possibly could; so one pipeline call counts its denoiser calls, and
a pipeline that saves more than calls x the per-call saving (beyond both intervals) is a measurement problem,
reported as such and not as a speedup.

Timed as users run it: the whole call with the pipeline's own classifier-free guidance (text pipelines
double the denoiser's batch), and the denoiser forward at the batch the pipeline hands it. A GPU UNet at batch 1 is
often bound by kernel launches rather than MACs, so the options that remove launch overhead are here too:
`compile` (torch.compile; on CUDA with mode="reduce-overhead", which replays CUDA graphs) and
`channels_last` (NHWC memory format, which cuDNN's convolutions prefer in half precision).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from functools import partial

import torch

from diffprune.devices import placement_of
from diffprune.errors import DiffpruneError
from diffprune.evaluation.report_keys import current_names
from diffprune.families import family_of
from diffprune.models.generation import CLASS_CONDITIONAL_IMAGE, DEFAULT_STEPS, generate, pipeline_family, takes_prompts
from diffprune.models.prompts import default_prompts
from diffprune.structure.costs import pipeline_cost_inputs
from diffprune.structure.denoiser import denoiser_name, denoiser_of
from diffprune.timing import (
    MIN_ROUNDS_FOR_INTERVAL,
    per_round_ratios,
    per_round_savings,
    spread,
    time_interleaved,
    time_summary,
)


@dataclass
class LatencySettings:
    batch_size: int = 1
    runs: int | None = None  # timed rounds; None: DEFAULT_ROUNDS (per part and device)
    warmup: int | None = None  # warm-up calls per model; None: DEFAULT_WARMUP; compilation happens during warm-up
    num_inference_steps: int = DEFAULT_STEPS  # steps of the timed pipeline call
    guidance_scale: float | None = None  # None: the pipeline's own default (SD: 7.5, so guidance is on)
    compile: bool = False  # torch.compile the denoiser (CUDA: mode="reduce-overhead", i.e. CUDA graphs)
    channels_last: bool = False  # the denoiser and its input in channels_last memory format
    measure_denoiser: bool = True
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
    mode = mode or compile_mode(placement_of(original).device)
    compiled = torch.compile(original, mode=mode)
    if "overhead" in mode:
        compiled.register_forward_hook(lambda module, args, output: cloned(output))
    setattr(pipeline, name, compiled)
    try:
        yield compiled
    finally:
        setattr(pipeline, name, original)


def cloned(output):
    """The denoiser's output with every tensor copied. CUDA graphs (mode="reduce-overhead") write each call's
    outputs into the same memory, and torch refuses access to an output that a later replay overwrote; multistep
    schedulers (PNDM, SD 1.5's default, and DPM-Solver) keep earlier outputs across calls. A forward hook on the
    compiled wrapper runs outside the graph; the copy is one latent's size."""
    if isinstance(output, torch.Tensor):
        return output.clone()
    if isinstance(output, (tuple, list)):
        return type(output)(cloned(item) for item in output)
    if hasattr(output, "items"):  # diffusers' BaseOutput dataclasses (UNet2DConditionOutput, ...) and dicts
        return type(output)(**{key: cloned(value) for key, value in output.items()})
    return output


@contextmanager
def channels_last_denoiser(denoiser, enabled: bool):
    """The denoiser's weights in channels_last while inside, back in the default (contiguous) format afterwards."""
    if not enabled:
        yield denoiser
        return
    denoiser.to(memory_format=torch.channels_last)
    try:
        yield denoiser
    finally:
        denoiser.to(memory_format=torch.contiguous_format)


def pipeline_guidance_scale(pipeline, requested: float | None) -> float | None:
    """The guidance scale a call uses: the requested one, else the pipeline call's default (its family says)."""
    return family_of(denoiser_of(pipeline)).guidance_scale(pipeline, requested)


def default_condition(pipeline) -> str:
    """What a timed call is conditioned on: a short prompt, or a class-conditional model's first default class."""
    return default_prompts(pipeline)[0] if pipeline_family(pipeline) == CLASS_CONDITIONAL_IMAGE else "a photograph"


def denoiser_batch_size(pipeline, settings: LatencySettings) -> int:
    """The batch one denoiser call sees: doubled by classifier-free guidance (unconditional + conditional halves)."""
    guidance = pipeline_guidance_scale(pipeline, settings.guidance_scale)
    guided = takes_prompts(pipeline) and guidance is not None and guidance > 1
    denoiser = denoiser_of(pipeline)
    guided = guided and denoiser.config.get("time_cond_proj_dim") is None  # guidance-distilled (LCM): one pass
    guided = guided and family_of(denoiser).guidance == "batched"  # FLUX-dev: guidance is an input, one pass
    return settings.batch_size * (2 if guided else 1)


PARTS = ("denoiser_forward", "pipeline")  # one denoiser forward; one whole pipeline call
# Rounds and warm-up calls per part when LatencySettings leaves them open. Whole calls: 10 rounds, the fewest whose
# 95% interval of the median leaves out the extreme rounds on both sides ([x(2), x(9)]), at 11 calls per model (the
# earlier protocol made 17: torch.utils.benchmark's timeit adds 2 untimed calls to each timed one). A denoiser
# forward is cheap and its saving is multiplied by the calls of a pipeline run (the bound below), so it gets more
# rounds (30: [x(10), x(21)]). eval/benchmark_latency_protocol.py measures the spreads these give on the bundled
# models (docs/results.md, "Latency protocol"); they were set before a quiet machine was at hand to measure them.
DEFAULT_ROUNDS = {"cuda": {"denoiser_forward": 50, "pipeline": 20}, "cpu": {"denoiser_forward": 30, "pipeline": 10}}
DEFAULT_WARMUP = {"cuda": {"denoiser_forward": 10, "pipeline": 3}, "cpu": {"denoiser_forward": 3, "pipeline": 1}}


def rounds_and_warmup(settings: LatencySettings, part: str, device: torch.device) -> tuple[int, int]:
    kind = "cuda" if device.type == "cuda" else "cpu"
    rounds = DEFAULT_ROUNDS[kind][part] if settings.runs is None else settings.runs
    warmup = DEFAULT_WARMUP[kind][part] if settings.warmup is None else settings.warmup
    return rounds, warmup


@contextmanager
def counted_denoiser_calls(pipeline):
    """The batch size of every denoiser call the pipeline makes while inside (a forward pre-hook on its
    denoiser, also when that is a compiled wrapper)."""
    denoiser = getattr(pipeline, denoiser_name(pipeline))
    batches = []

    def count(module, args, kwargs):
        first = next((value for value in (*args, *kwargs.values()) if isinstance(value, torch.Tensor)), None)
        batches.append(int(first.shape[0]) if first is not None and first.dim() else None)

    handle = denoiser.register_forward_pre_hook(count, with_kwargs=True)
    try:
        yield batches
    finally:
        handle.remove()


def measure_latencies(pipelines: dict, settings: LatencySettings, prompt: str | None = None) -> dict:
    """{label: {'denoiser_forward': ..., 'pipeline': ...}} for pipelines on one device, timed together: every model
    warmed up, then alternating rounds (diffprune.timing), so `speedups` can compare them round by round.

    Each part has median, IQR, min, max, every round's time, the batch sizes and dtype, peak memory on CUDA; the
    pipeline part also counts the denoiser calls one call makes (in an untimed first call that is part of the
    warm-up)."""
    first = next(iter(pipelines.values()))
    device = placement_of(denoiser_of(first)).device
    result = {label: {} for label in pipelines}
    with ExitStack() as stack:
        denoisers = {}
        for label, pipeline in pipelines.items():
            original = denoiser_of(pipeline)  # example inputs read its config; a compiled wrapper hides it
            stack.enter_context(channels_last_denoiser(original, settings.channels_last))
            denoisers[label] = stack.enter_context(compiled_denoiser(pipeline, settings.compile))
        stack.enter_context(torch.inference_mode())
        if settings.measure_denoiser:
            functions, batches = {}, {}
            for label, pipeline in pipelines.items():
                batches[label] = denoiser_batch_size(pipeline, settings)
                inputs = pipeline_cost_inputs(pipeline, batches[label])
                if settings.channels_last and "sample" in inputs:
                    inputs["sample"] = inputs["sample"].contiguous(memory_format=torch.channels_last)
                functions[label] = partial(denoisers[label], **inputs)
            rounds, warmup = rounds_and_warmup(settings, "denoiser_forward", device)
            timed = time_interleaved(functions, rounds, warmup, device)
            for label, pipeline in pipelines.items():
                result[label]["denoiser_forward"] = {
                    **_timing(timed, label, device),
                    **_common(pipeline, settings),
                    "denoiser_batch_size": batches[label],
                }
        if settings.measure_pipeline:
            functions = {label: _pipeline_call(pipeline, settings, prompt) for label, pipeline in pipelines.items()}
            calls = {}
            for label, pipeline in pipelines.items():
                with counted_denoiser_calls(pipeline) as batches:
                    functions[label]()
                calls[label] = batches
            rounds, warmup = rounds_and_warmup(settings, "pipeline", device)
            timed = time_interleaved(functions, rounds, max(warmup - 1, 0), device)
            for label, pipeline in pipelines.items():
                result[label]["pipeline"] = {
                    **_timing(timed, label, device),
                    "warmup": max(warmup, 1),  # the counting call is the first warm-up call
                    **_common(pipeline, settings),
                    "num_inference_steps": settings.num_inference_steps,
                    "guidance_scale": pipeline_guidance_scale(pipeline, settings.guidance_scale),
                    "denoiser_calls": len(calls[label]),
                    "denoiser_call_batch_sizes": sorted({batch for batch in calls[label] if batch is not None}),
                }
    return result


def measure_pipeline_latency(pipeline, settings: LatencySettings, prompt: str | None = None) -> dict:
    """{'denoiser_forward': ..., 'pipeline': ...} of one pipeline (measure_latencies with one model)."""
    return measure_latencies({"model": pipeline}, settings, prompt)["model"]


def _pipeline_call(pipeline, settings: LatencySettings, prompt: str | None):
    prompts = [prompt or default_condition(pipeline)] * settings.batch_size if takes_prompts(pipeline) else None
    return partial(
        generate,
        pipeline,
        prompts=prompts,
        seeds=list(range(settings.batch_size)),
        num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale,
        batch_size=settings.batch_size,
        show_progress=False,
    )


def _timing(timed, label: str, device: torch.device) -> dict:
    report = {**time_summary(timed.times_ms[label]), "warmup": timed.warmup, "device": str(device)}
    if label in timed.peak_memory_mb:
        report["peak_memory_mb"] = timed.peak_memory_mb[label]
    return report


def _common(pipeline, settings: LatencySettings) -> dict:
    placement = placement_of(denoiser_of(pipeline))
    common = {
        "batch_size": settings.batch_size,
        "dtype": str(placement.dtype).removeprefix("torch."),
        "compiled": settings.compile,
        "channels_last": settings.channels_last,
    }
    if settings.compile:
        common["compile_mode"] = compile_mode(placement.device)
    return common


def speedups(latency: dict, reference_latency: dict, macs: int | None, reference_macs: int | None) -> dict:
    """The speedup of `latency` over `reference_latency` (timed together by measure_latencies) per part: the
    median of the per-round ratios, with their IQR and the 95% confidence interval of the median (`ratios`), the
    milliseconds saved per round (`saved_ms`), the MACs-predicted speedup and measured / predicted.

    When only the denoiser changed, a pipeline call cannot save more than its denoiser calls do. A pipeline that
    saves more, beyond both confidence intervals, is a measurement problem (`measurement_problem` says what was
    seen) and its speedup is None rather than a number nobody should quote. Saved reports with older key names
    (`unet_forward`) are read too (current_names)."""
    latency, reference_latency = current_names(latency), current_names(reference_latency)
    predicted = reference_macs / macs if macs and reference_macs else None
    result = {"predicted_from_macs": predicted, "ratios": {}, "saved_ms": {}}
    for part in PARTS:
        if part in latency and part in reference_latency:
            reference_ms, times_ms = reference_latency[part]["times_ms"], latency[part]["times_ms"]
            result["ratios"][part] = spread(per_round_ratios(reference_ms, times_ms))
            result["saved_ms"][part] = spread(per_round_savings(reference_ms, times_ms))
            result[part] = result["ratios"][part]["median"]
            result[f"realisation_ratio_{part}"] = result[part] / predicted if predicted else None
    result["denoiser_bound"] = denoiser_bound(latency, reference_latency, result["saved_ms"])
    result["measurement_problem"] = result["denoiser_bound"].get("problem")
    if result["measurement_problem"]:
        result["pipeline"] = result["realisation_ratio_pipeline"] = None
    return result


def denoiser_bound(latency: dict, reference_latency: dict, saved_ms: dict) -> dict:
    """How much a pipeline call can save at most through its denoiser calls (calls x the per-call saving), and
    whether the measured pipeline saving exceeds it beyond both 95% confidence intervals (then `problem` says so)."""
    if "pipeline" not in saved_ms or "denoiser_forward" not in saved_ms:
        return {"checked": False, "why": "needs both the denoiser forward and the pipeline timed"}
    calls = latency["pipeline"].get("denoiser_calls")
    if calls is None or calls != reference_latency["pipeline"].get("denoiser_calls"):
        return {"checked": False, "why": "the two pipelines make different numbers of denoiser calls"}
    timed_batch = latency["denoiser_forward"].get("denoiser_batch_size")
    if latency["pipeline"].get("denoiser_call_batch_sizes") != [timed_batch]:
        return {"checked": False, "why": "the pipeline calls its denoiser at other batch sizes than the one timed"}
    pipeline, denoiser = saved_ms["pipeline"], saved_ms["denoiser_forward"]
    bound = {
        "checked": pipeline["ci95"] is not None and denoiser["ci95"] is not None,
        "denoiser_calls": calls,
        "pipeline_saved_ms": pipeline["median"],
        "denoiser_calls_can_save_ms": calls * denoiser["median"],
    }
    if not bound["checked"]:
        bound["why"] = f"fewer than {MIN_ROUNDS_FOR_INTERVAL} rounds give no 95% confidence interval"
        return bound
    bound["denoiser_calls_can_save_at_most_ms"] = calls * denoiser["ci95"][1]
    if pipeline["ci95"][0] > bound["denoiser_calls_can_save_at_most_ms"]:
        bound["problem"] = (
            f"the pipeline saved {pipeline['median']:.1f} ms per call (95% CI {pipeline['ci95'][0]:.1f} to "
            f"{pipeline['ci95'][1]:.1f}) but its {calls} denoiser calls can save at most "
            f"{bound['denoiser_calls_can_save_at_most_ms']:.1f} ms ({calls} x {denoiser['ci95'][1]:.2f}): "
            "something other than the cut changed between the timed calls; time again on a quiet machine"
        )
    return bound
