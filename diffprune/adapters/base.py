"""What every task adapter offers the criteria: final latents of a calibration set, and a denoising loss."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import DiffpruneError


@dataclass
class CalibrationSettings:
    """The calibration set: which samples are drawn, how, and how many at a time."""

    num_samples: int = 32
    num_inference_steps: int = 20
    seed: int = 0
    prompts: list[str] | None = None  # text-to-image: one prompt per sample, cycled
    guidance_scale: float | None = None  # None: the family's default
    max_batch: int = 64  # samples x variants per UNet call, to bound memory
    show_progress: bool = True
    images: str | None = None  # training images (+ captions) for loss-based criteria and distillation

    def __post_init__(self):
        if self.num_samples < 2:
            raise DiffpruneError("calibration needs at least 2 samples (std over samples); raise --num-samples")
        if self.num_inference_steps < 1:
            raise DiffpruneError("--steps must be at least 1")

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

    Calibration always samples with DDIM (eta = 0) built from the pipeline's own scheduler config: a
    deterministic sampler is what makes "how far did the final latents move" a property of the model.
    """

    def __init__(self, pipeline, settings: CalibrationSettings):
        from ..generation import pipeline_family

        self.pipeline = pipeline
        self.settings = settings
        self.unet = pipeline.unet
        self.family = pipeline_family(pipeline)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def user_latents(self) -> torch.Tensor | None:
        """Clean latents of the user's training images (settings.images), or None for data-free training."""
        if self.settings.images is None:
            return None
        from ..training_data import encode_images, image_files

        return encode_images(self.pipeline, image_files(self.settings.images)[: self.settings.num_samples])

    def seeds(self) -> list[int]:
        return [self.settings.seed + index for index in range(self.settings.num_samples)]

    def chunks(self, variants: int) -> list[tuple[int, int]]:
        """Sample ranges so that samples x variants stays within max_batch."""
        per_chunk = max(1, self.settings.max_batch // variants)
        total = self.settings.num_samples
        return [(start, min(start + per_chunk, total)) for start in range(0, total, per_chunk)]

    def final_latents(self, variants: int = 1, description: str | None = None) -> torch.Tensor:
        """[num_samples, variants, ...]: every variant starts from the same noise for the same sample.

        Callers install gates with `variants` values per unit; the batch is laid out sample-major
        (sample j, variant v at j * variants + v), which is how the gates tile their values.
        """
        outputs = []
        chunks = self.chunks(variants)
        progress = tqdm(chunks, desc=description, disable=not (description and self.settings.show_progress), leave=False)
        with torch.no_grad(), self.deterministic_scheduler(), self.quiet_pipeline():
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

    @contextmanager
    def deterministic_scheduler(self):
        from diffusers import DDIMScheduler

        original = self.pipeline.scheduler
        self.pipeline.scheduler = DDIMScheduler.from_config(original.config)
        try:
            yield self.pipeline.scheduler
        finally:
            self.pipeline.scheduler = original

    @abstractmethod
    def _generate(self, sample_indices: range, variants: int) -> torch.Tensor:
        """Final latents [len(sample_indices) * variants, ...], sample-major."""

    @abstractmethod
    def conditioning(self, sample_indices) -> dict:
        """Keyword arguments for the UNet besides sample and timestep, for these calibration samples."""

    def denoising_loss(self, unet, clean: torch.Tensor, sample_indices, generator: torch.Generator,
                       reduction: str = "mean") -> torch.Tensor:
        """The diffusion training loss of `unet` on clean latents: noise them at random timesteps and compare
        the prediction with its target (noise, v or sample, as the scheduler was trained)."""
        scheduler = self.pipeline.scheduler
        batch = clean.shape[0]
        noise = torch.randn(clean.shape, generator=generator).to(clean)
        steps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator).to(clean.device)
        noisy = scheduler.add_noise(clean, noise, steps)
        prediction = unet(noisy, steps, **self.conditioning(sample_indices)).sample
        kind = scheduler.config.get("prediction_type", "epsilon")
        target = {"epsilon": noise, "sample": clean}.get(kind)
        if target is None:
            target = scheduler.get_velocity(clean, noise, steps)
        loss = F.mse_loss(prediction.float(), target.float(), reduction="none").flatten(1).mean(1)
        return loss.mean() if reduction == "mean" else loss
