"""Text-conditioned pipelines (Stable Diffusion 1.x/2.x, SDXL, and text-to-audio such as AudioLDM).

Generation goes through the pipeline's own __call__ (see TaskAdapter), so each family's prompt encoding and
classifier-free guidance are exactly the user's; the gates tile over the guidance halves.
"""

from __future__ import annotations

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
        self._embeddings: dict[int, torch.Tensor] = {}

    def prompts_for(self, sample_indices) -> list[str]:
        return [self.prompts[i] for i in sample_indices]

    def conditioning(self, sample_indices) -> dict:
        """Prompt embeddings without guidance (the training-time conditioning), cached per sample."""
        self.check_losses_supported()
        missing = [i for i in sample_indices if i not in self._embeddings]
        if missing:
            if getattr(self.pipeline, "text_encoder_2", None) is not None:
                raise DiffpruneError(
                    "loss-based criteria and distillation do not support SDXL's two text encoders yet; use ld-pruner"
                )
            with torch.no_grad():
                embeddings = self.pipeline.encode_prompt(
                    [self.prompts[i] for i in missing], self.device, 1, do_classifier_free_guidance=False
                )[0]
            self._embeddings.update({i: e for i, e in zip(missing, embeddings, strict=True)})
        return {"encoder_hidden_states": torch.stack([self._embeddings[i] for i in sample_indices])}
