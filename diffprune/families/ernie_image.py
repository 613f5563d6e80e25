"""ERNIE-Image (ErnieImageTransformer2DModel): one stack of single-stream blocks over image and text tokens
concatenated (`layers`, `num_layers`), held sequence-first; every block reads the same shared adaLN modulation,
so a depth cut is the stock class with fewer blocks.

The pipeline passes latents already patchified into channels ([batch, 128, height / 16, width / 16]), the text
encoder's states padded to the longest prompt with their lengths, the scheduler's timestep, and doubles the batch
for classifier-free guidance.
"""

from __future__ import annotations

import torch
from diffusers import ErnieImageTransformer2DModel

from diffprune.families.registry import LOSSES, Family, Stack, register

TEXT_LENGTH = 256  # prompts are padded to the longest; a long prompt's length
DEFAULT_LATENT = 64  # 1024x1024 through the 16x VAE
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(ErnieImageTransformer2DModel)
class ErnieImage(Family):
    name = "ernie-image"
    stacks = (Stack("layers", "num_layers"),)
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or DEFAULT_LATENT
        length = text_length or TEXT_LENGTH
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "timestep": torch.full((batch_size,), 500.0),
            "text_bth": torch.randn(batch_size, length, config.text_in_dim, generator=generator),
            "text_lens": torch.full((batch_size,), length, dtype=torch.long),
        }
