"""Krea 2 (Krea2Transformer2DModel): one stack of single-stream blocks over text and image tokens concatenated
(`transformer_blocks`, `num_layers`); every block reads the shared timestep modulation plus its own additive
table, so a depth cut is the stock class with fewer blocks. The text-fusion blocks that mix the tapped
text-encoder layers (`text_fusion`) are not cut.

The pipeline passes packed latent tokens, a stack of `num_text_layers` text-encoder layers per token (512 tokens)
with their mask, rotary coordinates of text and image, timestep = sigma in [0, 1], and one call per prompt and per
negative prompt for guidance.
"""

from __future__ import annotations

import torch
from diffusers import Krea2Transformer2DModel

from diffprune.families.flux import DEFAULT_LATENT, grid_ids
from diffprune.families.registry import LOSSES, Family, Stack, register

TEXT_LENGTH = 512  # the pipeline's max_sequence_length
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(Krea2Transformer2DModel)
class Krea2(Family):
    name = "krea2"
    stacks = (Stack("transformer_blocks", "num_layers"),)
    guidance = "separate"
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        length = text_length or TEXT_LENGTH
        side = (latent_size or DEFAULT_LATENT) // 2
        return {
            "hidden_states": torch.randn(batch_size, side * side, config.in_channels, generator=generator),
            "encoder_hidden_states": torch.randn(
                batch_size, length, config.num_text_layers, config.text_hidden_dim, generator=generator
            ),
            "timestep": torch.full((batch_size,), 0.5),
            "position_ids": torch.cat([torch.zeros(length, 3), grid_ids(side)]),
            "encoder_attention_mask": torch.ones(batch_size, length, dtype=torch.bool),
        }
