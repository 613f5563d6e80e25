"""Generating samples with a pipeline's own `__call__`, the same way for every metric, grid and benchmark.

Every sample has its own seed and its own torch.Generator (on the CPU), so sample i is the same whether it is
drawn alone or in a batch of 64, on a CPU or a GPU: that is what makes "model A vs model B with the same seeds"
a fair comparison. Families: text-to-image (Stable Diffusion style, prompts), class-conditional image (DiT: each
"prompt" is a class label, a name from the pipeline's labels or an integer id), unconditional image (DDPM, DDIM,
LDM, seeds only), audio diffusion (mel images plus audio), text-to-audio (AudioLDM, AudioLDM2, Stable Audio in
stereo; mel images are rendered from the audio, mixed to mono, so grids and FID work the same way for audio).
"""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from diffprune.distributed import process_state
from diffprune.errors import DiffpruneError
from diffprune.families import CALIBRATION, family_of, require
from diffprune.structure.denoiser import denoiser_of
from diffprune.tensors import output_tensor, replace_output_tensor

TEXT_TO_IMAGE = "text-to-image"
UNCONDITIONAL_IMAGE = "unconditional-image"
AUDIO_DIFFUSION = "audio-diffusion"
TEXT_TO_AUDIO = "text-to-audio"
CLASS_CONDITIONAL_IMAGE = "class-conditional-image"
FAMILIES = (TEXT_TO_IMAGE, CLASS_CONDITIONAL_IMAGE, UNCONDITIONAL_IMAGE, AUDIO_DIFFUSION, TEXT_TO_AUDIO)

DEFAULT_STEPS = 25
# Mel images for text-to-audio output (AudioLDM returns audio only): square, like diffusers' audio diffusion.
TEXT_TO_AUDIO_MEL_RESOLUTION = 128


@dataclass
class GeneratedBatch:
    """What a pipeline produced for a list of seeds (and prompts): images always, audio for audio families."""

    images: list  # PIL images; mel spectrograms for audio families
    seeds: list[int]
    prompts: list[str] | None = None
    audios: list[np.ndarray] | None = None  # float waveforms: [samples] mono, or [samples, channels] (stereo)
    sample_rate: int | None = None

    def __len__(self) -> int:
        return len(self.images)


def pipeline_family(pipeline) -> str:
    """Which of FAMILIES a pipeline belongs to, judged by its components (or, where they cannot tell, by its
    denoiser's family), not its class name; a pipeline whose denoiser's family cannot sample through it is refused
    with that family's reason."""
    denoiser_family = require(denoiser_of(pipeline), CALIBRATION, pipeline)
    if denoiser_family.task is not None:
        return denoiser_family.task
    if "class_labels" in inspect.signature(pipeline.__call__).parameters:  # DiTPipeline
        return CLASS_CONDITIONAL_IMAGE
    if getattr(pipeline, "mel", None) is not None:
        return AUDIO_DIFFUSION
    if getattr(pipeline, "vocoder", None) is not None:
        return TEXT_TO_AUDIO
    if getattr(pipeline, "tokenizer", None) is not None or getattr(pipeline, "text_encoder", None) is not None:
        return TEXT_TO_IMAGE
    return UNCONDITIONAL_IMAGE


def takes_prompts(pipeline) -> bool:
    """True where every sample has its own condition: a text prompt, or a class label (class-conditional)."""
    return pipeline_family(pipeline) in (TEXT_TO_IMAGE, CLASS_CONDITIONAL_IMAGE, TEXT_TO_AUDIO)


def class_ids(pipeline, labels) -> list[int]:
    """Class ids for class labels given as integers ("207") or as names the pipeline knows ("white shark")."""
    denoiser = denoiser_of(pipeline)
    return require(denoiser, CALIBRATION, pipeline).class_ids(pipeline, labels)


def denoiser_num_classes(pipeline) -> int | None:
    """How many classes a class-conditional denoiser embeds (DiT: num_embeds_ada_norm), if it says."""
    denoiser = denoiser_of(pipeline)
    return require(denoiser, CALIBRATION, pipeline).num_classes(denoiser)


def sample_plan(
    num_samples: int, seed: int = 0, prompts: list[str] | None = None
) -> tuple[list[int], list[str] | None]:
    """Seeds seed, seed+1, ... and prompts cycled to the same length: sample i always gets the same pair."""
    if num_samples < 1:
        raise DiffpruneError("`num_samples` must be at least 1")
    seeds = [seed + index for index in range(num_samples)]
    if prompts is None:
        return seeds, None
    return seeds, [prompts[index % len(prompts)] for index in range(num_samples)]


def generate(
    pipeline,
    prompts: list[str] | None = None,
    seeds: list[int] | int = 1,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int = 8,
    show_progress: bool = True,
    description: str = "generating",
) -> GeneratedBatch:
    """Draw one sample per seed (an int means seeds 0..n-1); text families need one prompt per seed.

    num_inference_steps defaults to DEFAULT_STEPS; guidance_scale to the pipeline's own default.
    """
    family = pipeline_family(pipeline)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise DiffpruneError("nothing to generate: pass at least one seed")
    if family in (TEXT_TO_IMAGE, CLASS_CONDITIONAL_IMAGE, TEXT_TO_AUDIO):
        if not prompts:
            raise DiffpruneError(f"{type(pipeline).__name__} is {family}: pass `prompts`")
        if len(prompts) != len(seeds):
            raise DiffpruneError(f"got {len(prompts)} prompts for {len(seeds)} seeds; pass one prompt per seed")
    else:
        prompts = None
    steps = num_inference_steps or DEFAULT_STEPS
    state = process_state()
    if state.num_processes > 1:  # under accelerate launch: each process draws its share, all get everything
        return _generate_shared(
            state, pipeline, prompts, seeds, steps, guidance_scale, batch_size, show_progress, description
        )
    return _generate_local(
        pipeline, family, prompts, seeds, steps, guidance_scale, batch_size, show_progress, description
    )


def _generate_local(pipeline, family, prompts, seeds, steps, guidance_scale, batch_size, show_progress, description):
    pipeline.set_progress_bar_config(disable=True)  # one bar over batches instead of one per batch's steps
    batches = [range(start, min(start + batch_size, len(seeds))) for start in range(0, len(seeds), batch_size)]
    images, audios, sample_rate = [], [], None
    progress = tqdm(batches, desc=description, unit="batch", disable=not show_progress or len(batches) < 2, leave=False)
    for batch in progress:
        batch_seeds = [seeds[index] for index in batch]
        batch_prompts = [prompts[index] for index in batch] if prompts else None
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in batch_seeds]
        batch_images, batch_audios, sample_rate = _call_pipeline(
            pipeline, family, batch_prompts, generators, steps, guidance_scale
        )
        images.extend(batch_images)
        if batch_audios is not None:
            audios.extend(batch_audios)
    return GeneratedBatch(images=images, seeds=seeds, prompts=prompts, audios=audios or None, sample_rate=sample_rate)


def _generate_shared(state, pipeline, prompts, seeds, steps, guidance_scale, batch_size, show_progress, description):
    """Seeds are dealt round-robin over processes; results are gathered and put back in seed order. A sample
    depends only on its seed (one generator per sample), so the result equals a single-process run."""
    mine = list(range(state.process_index, len(seeds), state.num_processes))
    local = None
    if mine:
        local = _generate_local(
            pipeline,
            pipeline_family(pipeline),
            [prompts[i] for i in mine] if prompts else None,
            [seeds[i] for i in mine],
            steps,
            guidance_scale,
            batch_size,
            show_progress and state.is_main_process,
            description,
        )
    parts = gather_object([(mine, local)])
    images, audios, sample_rate = [None] * len(seeds), [None] * len(seeds), None
    for indices, batch in parts:
        if batch is None:
            continue
        sample_rate = batch.sample_rate
        for position, index in enumerate(indices):
            images[index] = batch.images[position]
            if batch.audios is not None:
                audios[index] = batch.audios[position]
    has_audio = any(audio is not None for audio in audios)
    return GeneratedBatch(
        images=images, seeds=seeds, prompts=prompts, audios=audios if has_audio else None, sample_rate=sample_rate
    )


def _call_pipeline(pipeline, family, prompts, generators, steps, guidance_scale):
    """(images, audios or None, sample_rate or None) for one batch, through the pipeline's own __call__."""
    extra = family_of(denoiser_of(pipeline)).guidance_arguments(pipeline, guidance_scale)
    if family == TEXT_TO_IMAGE:
        output = pipeline(prompt=prompts, generator=generators, num_inference_steps=steps, output_type="pil", **extra)
        return output.images, None, None
    if family == CLASS_CONDITIONAL_IMAGE:
        labels = class_ids(pipeline, prompts)
        output = pipeline(
            class_labels=labels, generator=generators, num_inference_steps=steps, output_type="pil", **extra
        )
        return output.images, None, None
    if family == UNCONDITIONAL_IMAGE:
        with _last_sample_in_fp32(pipeline):
            output = pipeline(
                batch_size=len(generators), generator=generators, num_inference_steps=steps, output_type="pil"
            )
        return output.images, None, None
    if family == AUDIO_DIFFUSION:
        # Its scheduler steps draw noise too; the per-sample generators keep those draws per sample as well.
        images, (sample_rate, audios) = pipeline(
            batch_size=len(generators), generator=generators, steps=steps, return_dict=False
        )
        return list(images), [np.asarray(audio, dtype=np.float32).reshape(-1) for audio in audios], int(sample_rate)
    parameters = inspect.signature(pipeline.__call__).parameters
    if "num_waveforms_per_prompt" in parameters:
        extra["num_waveforms_per_prompt"] = 1
    output = pipeline(prompt=prompts, generator=generators, num_inference_steps=steps, output_type="np", **extra)
    audios = [frames_by_channels(audio) for audio in output.audios]
    sample_rate = audio_sample_rate(pipeline)
    return [mel_image(mono(audio), sample_rate) for audio in audios], audios, sample_rate


def audio_sample_rate(pipeline) -> int:
    """The rate of a text-to-audio pipeline's waveforms: its vocoder's (AudioLDM, AudioLDM2), else its audio
    autoencoder's (Stable Audio's Oobleck VAE decodes waveforms itself)."""
    vocoder = getattr(pipeline, "vocoder", None)
    return int((vocoder if vocoder is not None else pipeline.vae).config.sampling_rate)


def frames_by_channels(audio) -> np.ndarray:
    """A pipeline's waveform as float32 [samples] (mono) or [samples, channels] (WAV's layout), from [samples],
    [1, samples] or [channels, samples] (Stable Audio: stereo)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[0] == 1:
        return audio.reshape(-1)
    return audio.T if audio.ndim == 2 else audio.reshape(-1)


def mono(audio: np.ndarray) -> np.ndarray:
    """[samples]: the mean over channels of a [samples, channels] waveform (what mel images and CLAP take)."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio.reshape(-1)


@contextmanager
def _on_last_step(scheduler, action):
    """Within the block, the output of the scheduler's last `step` of a call (the final sample) passes through
    `action`, which may replace it or raise. One wrapper for both uses below, so the "last step" rule (the
    number of steps equals len(timesteps), also for schedulers that step twice per timestep) lives once."""
    step, calls = scheduler.step, [0]
    wrapper_before = scheduler.__dict__.get("step")  # an enclosing _on_last_step's wrapper, if any

    # wraps: pipelines read step's signature to decide whether to pass `generator` and `eta`
    # (prepare_extra_step_kwargs); a bare (*args, **kwargs) would hide them, and a stochastic sampler
    # (Stable Audio's SDE DPM-Solver, Euler ancestral) would then draw unseeded step noise.
    @functools.wraps(step)
    def wrapped_step(*args, **kwargs):
        output = step(*args, **kwargs)
        calls[0] += 1
        return action(output) if calls[0] == len(scheduler.timesteps) else output

    scheduler.step = wrapped_step
    try:
        yield
    finally:
        if wrapper_before is None:
            del scheduler.step
        else:
            scheduler.step = wrapper_before


def _last_sample_in_fp32(pipeline):
    """DDPM/DDIM pipelines turn their last sample into numpy, which has no bfloat16: the scheduler's last step
    hands it back in fp32 (earlier steps keep the model's dtype, which the next UNet call needs)."""
    return _on_last_step(
        pipeline.scheduler, lambda output: replace_output_tensor(output, output_tensor(output).float())
    )


class _FinalLatentsReached(Exception):
    """Raised from inside a pipeline call once its last scheduler step has produced the final latents."""

    def __init__(self, latents: torch.Tensor):
        super().__init__("final latents reached")
        self.latents = latents


@contextmanager
def _stop_at_final_latents(pipeline):
    """Install a fresh copy of the pipeline's own scheduler (same class and config: no state leaks between
    calls) whose last `step` raises _FinalLatentsReached with its prev_sample, so nothing is decoded."""

    def stop(output):
        raise _FinalLatentsReached(output_tensor(output))

    original = pipeline.scheduler
    scheduler = type(original).from_config(original.config)
    pipeline.scheduler = scheduler
    try:
        with _on_last_step(scheduler, stop):
            yield
    finally:
        pipeline.scheduler = original


def final_latents(pipeline, prompts, generators, num_inference_steps: int, guidance_scale: float | None = None):
    """What the last denoising step of the pipeline's own `__call__` returns (latents before VAE/VQ/mel
    decoding; samples of pixel models before clamping), one per generator.

    The pipeline samples exactly as for its users (its scheduler, prediction type, clipping, timestep
    spacing, guidance, initial noise); the call stops after the last scheduler step, so nothing is decoded.
    """
    family = pipeline_family(pipeline)
    with _stop_at_final_latents(pipeline):
        try:
            _call_pipeline(pipeline, family, prompts, generators, num_inference_steps, guidance_scale)
        except _FinalLatentsReached as reached:
            latents = reached.latents
            if family == CLASS_CONDITIONAL_IMAGE and latents.shape[0] == 2 * len(generators):
                latents = latents[: len(generators)]  # DiT steps both guidance halves, which hold the same samples
            return latents
    raise DiffpruneError(
        f"{type(pipeline).__name__} finished without calling its scheduler's step; cannot calibrate on it"
    )


def mel_image(audio: np.ndarray, sample_rate: int, resolution: int = TEXT_TO_AUDIO_MEL_RESOLUTION):
    """A grayscale mel-spectrogram image of the first `resolution` frames, rendered as diffusers' Mel does."""
    from diffusers import Mel

    hop_length = max(1, len(audio) // resolution)
    # 2048 (diffusers' default) unless the clip is shorter: an FFT longer than the signal is all padding.
    n_fft = min(2048, 2 ** max(4, int(np.log2(max(len(audio), 2)))))
    mel = Mel(x_res=resolution, y_res=resolution, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length)
    mel.load_audio(raw_audio=audio)
    return mel.audio_slice_to_image(0)


def images_to_uint8(images) -> torch.Tensor:
    """[N, C, H, W] uint8 from PIL images (grayscale stays one channel; all images must share a size)."""
    arrays = [
        np.asarray(image.convert("L") if image.mode in ("L", "I", "F", "1") else image.convert("RGB"))
        for image in images
    ]
    if len({array.shape for array in arrays}) > 1:
        raise DiffpruneError("images of different sizes cannot form one batch; resize them to one size first")
    batch = torch.from_numpy(np.stack(arrays))
    return batch.unsqueeze(1) if batch.dim() == 3 else batch.permute(0, 3, 1, 2).contiguous()
