"""What every task adapter offers the criteria: final latents of a calibration set, and a denoising loss."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from diffprune.errors import DiffpruneError
from diffprune.families import LOSSES, family_of, require
from diffprune.models.generation import AUDIO_DIFFUSION, TEXT_TO_AUDIO, final_latents, pipeline_family
from diffprune.models.training_data import encode_images, image_files
from diffprune.models.training_noise import TrainingNoise
from diffprune.structure.denoiser import denoiser_of


@dataclass
class CalibrationSettings:
    """The calibration set: which samples are drawn, how, and how many at a time."""

    num_samples: int = 32
    num_inference_steps: int = 20
    seed: int = 0
    prompts: list[str] | None = None  # text-to-image: one prompt per sample, cycled
    guidance_scale: float | None = None  # None: the pipeline's own default
    max_batch: int = 64  # samples x variants per UNet call, to bound memory
    show_progress: bool = True
    images: str | None = None  # training images (+ captions) for loss-based criteria and distillation

    def __post_init__(self):
        if self.num_samples < 2:
            raise DiffpruneError("calibration needs at least 2 samples (std over samples); raise `num_samples`")
        if self.num_inference_steps < 1:
            raise DiffpruneError("`num_inference_steps` must be at least 1")

    def as_dict(self) -> dict:
        return {
            "num_samples": self.num_samples,
            "num_inference_steps": self.num_inference_steps,
            "seed": self.seed,
            "prompts": self.prompts,
            "guidance_scale": self.guidance_scale,
            "images": self.images,
        }


class TaskAdapter(ABC):
    """Generates final latents (before VAE/VQ decoding; final samples for pixel models) and denoising losses.

    Calibration samples through the pipeline's own call (generation.final_latents): its scheduler, clipping,
    guidance and initial noise, exactly what users draw. Each sample has its own seeded generator, so every
    variant of sample j starts from the same noise (and, for stochastic samplers, sees the same step noise):
    "how far did the final latents move" is then a property of the model, not of the random draw.
    """

    conditioned = False  # whether the pipeline takes a prompt or a class label

    def __init__(self, pipeline, settings: CalibrationSettings):
        self.pipeline = pipeline
        self.settings = settings
        self.denoiser = denoiser_of(pipeline)
        self.family = pipeline_family(pipeline)
        self.denoiser_family = family_of(self.denoiser)
        if settings.images is not None and self.family in (AUDIO_DIFFUSION, TEXT_TO_AUDIO):
            raise DiffpruneError(
                f"training images cannot train {self.family} pipelines; leave out `images` (--images): the losses "
                "and distillation train on the pipeline's own samples"
            )

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @cached_property
    def training_noise(self) -> TrainingNoise:
        """How the model was trained to denoise (built on first use: LD-Pruner never needs it)."""
        return TrainingNoise.for_pipeline(self.pipeline)

    def user_latents(self) -> torch.Tensor | None:
        """Clean latents of the user's training images (settings.images), or None for data-free training."""
        if self.settings.images is None:
            return None
        return encode_images(self.pipeline, image_files(self.settings.images)[: self.settings.num_samples])

    def seeds(self) -> list[int]:
        return [self.settings.seed + index for index in range(self.settings.num_samples)]

    def chunks(self, variants: int, samples: range | None = None) -> list[tuple[int, int]]:
        """Ranges of `samples` (default: all) so that samples x variants stays within max_batch."""
        samples = range(self.settings.num_samples) if samples is None else samples
        per_chunk = max(1, self.settings.max_batch // variants)
        return [
            (start, min(start + per_chunk, samples.stop)) for start in range(samples.start, samples.stop, per_chunk)
        ]

    def final_latents(
        self, variants: int = 1, description: str | None = None, samples: range | None = None
    ) -> torch.Tensor:
        """[len(samples), variants, ...] for calibration samples `samples` (default: all, 0..num_samples-1):
        every variant starts from the same noise for the same sample, and sample j is the same whichever range
        it is drawn in (its own seed and prompt), so a range drawn later extends an earlier one exactly.

        Callers install gates with `variants` values per unit; the batch is laid out sample-major
        (sample j, variant v at j * variants + v), which is how the gates tile their values.
        """
        outputs = []
        chunks = self.chunks(variants, samples)
        progress = tqdm(
            chunks, desc=description, disable=not (description and self.settings.show_progress), leave=False
        )
        with torch.no_grad(), self.quiet_pipeline():
            for start, stop in progress:
                latents = self._generate(range(start, stop), variants)
                outputs.append(latents.reshape(stop - start, variants, *latents.shape[1:]).float().cpu())
        latents = torch.cat(outputs)
        if not torch.isfinite(latents).all():
            raise DiffpruneError("the model produced NaN or infinite latents; check the weights, dtype (try fp32)")
        return latents

    @contextmanager
    def quiet_pipeline(self):
        """Our own bar counts variants; the pipeline's per-step bar would repeat for every batch."""
        saved = dict(getattr(self.pipeline, "_progress_bar_config", {}))
        self.pipeline.set_progress_bar_config(disable=True)
        try:
            yield
        finally:
            self.pipeline._progress_bar_config = saved

    def prompts_for(self, sample_indices) -> list[str] | None:
        """One prompt per calibration sample (text families), None for unconditional ones."""
        return None

    def _generate(self, sample_indices: range, variants: int) -> torch.Tensor:
        """Final latents [len(sample_indices) * variants, ...], sample-major."""
        seeds = self.seeds()
        generators = [torch.Generator().manual_seed(seeds[i]) for i in sample_indices for _ in range(variants)]
        prompts = self.prompts_for(sample_indices)
        if prompts is not None:
            prompts = [prompt for prompt in prompts for _ in range(variants)]
        return final_latents(
            self.pipeline, prompts, generators, self.settings.num_inference_steps, self.settings.guidance_scale
        )

    def check_losses_supported(self, model=None) -> None:
        """Raises the family's one-line refusal where the training-time losses cannot call this denoiser."""
        require(model if model is not None else self.denoiser, LOSSES, self.pipeline)

    @abstractmethod
    def conditioning(self, sample_indices) -> dict:
        """Keyword arguments for the denoiser besides sample and timestep, for these calibration samples."""

    def unconditional_conditioning(self, sample_indices) -> dict | None:
        """The conditioning of classifier-free guidance's unconditional half (the pipeline's empty negative prompt,
        DiT's null class) for these samples, or None where the family has none (unconditional models)."""
        return None

    def predict(self, model, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: dict) -> torch.Tensor:
        """`model`'s prediction (the pipeline's denoiser, or a copy or cut of it) for `noisy` at `timesteps`, in
        the latents' layout, called as the pipeline calls its denoiser (the denoiser family's `predict`)."""
        return self.denoiser_family.predict(self.pipeline, model, noisy, timesteps, conditioning)

    def denoising_loss(
        self, model, clean: torch.Tensor, sample_indices, generator: torch.Generator, reduction: str = "mean"
    ) -> torch.Tensor:
        """The diffusion training loss of `model` on clean latents: noise them at random timesteps and compare
        the prediction with its target, the way the model was trained (training_noise.py)."""
        self.check_losses_supported(model)
        batch = self.training_noise.draw(clean, generator)
        prediction = self.predict(model, batch.noisy, batch.timesteps, self.conditioning(sample_indices))
        loss = F.mse_loss(prediction.float(), batch.target.float(), reduction="none").flatten(1).mean(1)
        return loss.mean() if reduction == "mean" else loss
