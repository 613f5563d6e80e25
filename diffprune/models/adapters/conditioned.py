"""Conditioned pipelines: each calibration sample has a prompt (text-to-image, text-to-audio) or, for
class-conditional pipelines (DiT), a class label, a name the pipeline knows or an integer id, given where text
pipelines take prompts (`prompts`, `--prompts FILE`).

Generation goes through the pipeline's own __call__ (see TaskAdapter), so each pipeline's prompt encoding and
classifier-free guidance are exactly the user's; the gates tile over the guidance halves. The training-time
conditioning (no guidance: the conditional branch alone is the model) is the denoiser family's `encode`.
"""

from __future__ import annotations

from functools import cached_property

import torch

from diffprune.models.adapters.base import TaskAdapter
from diffprune.models.prompts import default_prompts
from diffprune.models.training_data import image_files, read_captions


class ConditionedAdapter(TaskAdapter):
    conditioned = True

    def __init__(self, pipeline, settings):
        super().__init__(pipeline, settings)
        prompts = settings.prompts or default_prompts(pipeline)
        if settings.images is not None:  # training images bring their own conditioning
            prompts = read_captions(image_files(settings.images)[: settings.num_samples])
        self.prompts = [prompts[i % len(prompts)] for i in range(settings.num_samples)]
        self._encoded: dict[int, dict[str, torch.Tensor]] = {}

    def prompts_for(self, sample_indices) -> list[str]:
        return [self.prompts[i] for i in sample_indices]

    def encode(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """The denoiser's conditioning for these prompts (or class labels), without guidance."""
        self.check_losses_supported()
        return self.denoiser_family.encode(self.pipeline, prompts, self.device)

    def encode_negative(self) -> dict[str, torch.Tensor] | None:
        """The denoiser's inputs for the unconditional half of the pipeline's guidance (one row), or None."""
        self.check_losses_supported()
        return self.denoiser_family.encode_negative(self.pipeline, self.device)

    @cached_property
    def _negative(self) -> dict[str, torch.Tensor] | None:
        with torch.no_grad():
            return self.encode_negative()

    def unconditional_conditioning(self, sample_indices) -> dict | None:
        negative = self._negative  # encoded once: the same for every sample
        if negative is None:
            return None
        count = len(sample_indices)
        return {key: value[:1].expand(count, *value.shape[1:]) for key, value in negative.items()}

    def conditioning(self, sample_indices) -> dict:
        """The denoiser's conditioning for these calibration samples. The calibration set's prompts are encoded
        once, all in one batch, the first time any is asked for: pipelines that pad prompts to the longest of
        their batch (CogView4) would otherwise give samples encoded at different times different lengths."""
        self.check_losses_supported()
        if not self._encoded:
            unique = list(dict.fromkeys(self.prompts))
            with torch.no_grad():
                encoded = self.encode(unique)
            position = {prompt: index for index, prompt in enumerate(unique)}
            for index, prompt in enumerate(self.prompts):
                self._encoded[index] = {key: value[position[prompt]] for key, value in encoded.items()}
        samples = [self._encoded[i] for i in sample_indices]
        return {key: torch.stack([sample[key] for sample in samples]) for key in samples[0]}
