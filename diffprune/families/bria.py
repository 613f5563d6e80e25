"""Bria 3.2 (BriaTransformer2DModel): FLUX's layout without pooled text or guidance embedding: a stack of
double-stream blocks (`transformer_blocks`, `num_layers`) and one of single-stream blocks
(`single_transformer_blocks`, `num_single_layers`), both returning (text, image) and reading only the shared
timestep embedding and rotary positions, so a depth cut is the stock class with fewer blocks.

The pipeline encodes prompts with T5 (128 tokens, zero-padded), packs 2x2 latent patches into tokens as FLUX
does, passes the scheduler's timestep (0-1000) and doubles the batch for classifier-free guidance. A ControlNet's
residuals are spread over the blocks by `len(blocks) / len(residuals)`, so a cut model needs a ControlNet
trained for its depth.
"""

from __future__ import annotations

import torch
from diffusers import BriaTransformer2DModel

from diffprune.families.flux import DEFAULT_LATENT, grid_ids
from diffprune.families.registry import LOSSES, TEXT_IMAGE, Family, Stack, register

NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"
FLUX_LIKE_STACKS = (
    Stack("transformer_blocks", "num_layers", streams=TEXT_IMAGE),
    Stack("single_transformer_blocks", "num_single_layers", kind="single_transformer_block", streams=TEXT_IMAGE),
)


def packed_inputs(model, batch_size, text_length, latent_size, generator, timestep, default_text_length) -> dict:
    """One call of a FLUX-like denoiser: packed latent tokens of a square grid, text states, their position ids."""
    config = model.config
    length = text_length or default_text_length
    side = (latent_size or DEFAULT_LATENT) // 2
    return {
        "hidden_states": torch.randn(batch_size, side * side, config.in_channels, generator=generator),
        "encoder_hidden_states": torch.randn(batch_size, length, config.joint_attention_dim, generator=generator),
        "timestep": torch.full((batch_size,), float(timestep)),
        "img_ids": grid_ids(side),
        "txt_ids": torch.zeros(length, 3),
    }


@register(BriaTransformer2DModel)
class Bria(Family):
    name = "bria"
    stacks = FLUX_LIKE_STACKS
    context_branches = ("ff_context",)
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        return packed_inputs(model, batch_size, text_length, latent_size, generator, 500.0, 128)
