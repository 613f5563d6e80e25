"""Text-conditioned pipelines (Stable Diffusion 1.x/2.x, SDXL, and text-to-audio such as AudioLDM).

Generation goes through the pipeline's own __call__ (see TaskAdapter), so each family's prompt encoding and
classifier-free guidance are exactly the user's; the gates tile over the guidance halves.
"""

from __future__ import annotations

from functools import cached_property

import torch

from diffprune.errors import DiffpruneError
from diffprune.models.adapters.base import TaskAdapter
from diffprune.models.prompts import default_prompts


class TextConditionedAdapter(TaskAdapter):
    def __init__(self, pipeline, settings):
        super().__init__(pipeline, settings)
        prompts = settings.prompts or default_prompts(pipeline)
        if settings.images is not None:  # training images bring their own conditioning
            from diffprune.models.training_data import image_files, read_captions

            prompts = read_captions(image_files(settings.images)[: settings.num_samples])
        self.prompts = [prompts[i % len(prompts)] for i in range(settings.num_samples)]
        self._encoded: dict[int, dict[str, torch.Tensor]] = {}

    def prompts_for(self, sample_indices) -> list[str]:
        return [self.prompts[i] for i in sample_indices]

    def encode(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """The denoiser's text inputs for these prompts, without guidance (the training-time conditioning)."""
        self._check_one_text_encoder()
        embeddings = self.pipeline.encode_prompt(prompts, self.device, 1, do_classifier_free_guidance=False)[0]
        return {"encoder_hidden_states": embeddings}

    def _check_one_text_encoder(self) -> None:
        if getattr(self.pipeline, "text_encoder_2", None) is not None:
            raise DiffpruneError(
                "loss-based criteria and distillation do not support SDXL's two text encoders yet; use ld-pruner"
            )

    def encode_negative(self) -> dict[str, torch.Tensor] | None:
        """The denoiser's inputs for the negative prompt the pipeline's guidance uses by default (""), one row."""
        self._check_one_text_encoder()
        embeddings = self.pipeline.encode_prompt([""], self.device, 1, do_classifier_free_guidance=True)[1]
        return {"encoder_hidden_states": embeddings}

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
        """The denoiser's conditioning for these calibration samples, encoded once per sample."""
        self.check_losses_supported()
        missing = [i for i in sample_indices if i not in self._encoded]
        if missing:
            with torch.no_grad():
                encoded = self.encode([self.prompts[i] for i in missing])
            for position, index in enumerate(missing):
                self._encoded[index] = {key: value[position] for key, value in encoded.items()}
        samples = [self._encoded[i] for i in sample_indices]
        return {key: torch.stack([sample[key] for sample in samples]) for key in samples[0]}
