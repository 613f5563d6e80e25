"""Bria FIBO (BriaFiboTransformer2DModel; FIBO and FIBO-Edit): FLUX's layout of double-stream blocks
(`transformer_blocks`, `num_layers`, returning (text, image)) and single-stream blocks over the concatenated
tokens (`single_transformer_blocks`, `num_single_layers`), where before every block the second half of the text
stream's channels is replaced by that block's own text-encoder layer: block i (counting through both stacks)
reads `text_encoder_layers[i]` through `caption_projection[i]`.

Trap: the pipeline hands the model the text encoder's last N layers, N = the number of blocks it has, so after a
depth cut every block before the removed one would read the next layer up (a cut that also drops the removed
block's projection is still wrong). Blocks are therefore cut in place (replaced by a bypass, the Pruned* class):
the model keeps N blocks, the pipeline keeps handing it N layers, and each kept block reads its own.

The pipeline packs latent tokens as FLUX does, passes SmolLM3 states (the last two layers concatenated) and the
per-block layers, the scheduler's timestep (0-1000), and doubles the batch for classifier-free guidance.
"""

from __future__ import annotations

import torch
from diffusers import BriaFiboTransformer2DModel

from diffprune.families.flux import DEFAULT_LATENT, grid_ids
from diffprune.families.registry import LOSSES, REPLACE, TEXT_IMAGE, Family, Stack, register

TEXT_LENGTH = 256
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(BriaFiboTransformer2DModel)
class BriaFibo(Family):
    name = "bria-fibo"
    stacks = (
        Stack("transformer_blocks", "num_layers", streams=TEXT_IMAGE, cut=REPLACE),
        Stack("single_transformer_blocks", "num_single_layers", kind="single_transformer_block", cut=REPLACE),
    )
    context_branches = ("ff_context",)
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        """The per-block text layers as one tensor [blocks, batch, tokens, width] (the model indexes and iterates
        over its first axis, as over the pipeline's list)."""
        config = model.config
        length = text_length or TEXT_LENGTH
        side = (latent_size or DEFAULT_LATENT) // 2
        blocks = len(model.transformer_blocks) + len(model.single_transformer_blocks)
        return {
            "hidden_states": torch.randn(batch_size, side * side, config.in_channels, generator=generator),
            "encoder_hidden_states": torch.randn(batch_size, length, config.joint_attention_dim, generator=generator),
            "text_encoder_layers": torch.randn(
                blocks, batch_size, length, config.text_encoder_dim, generator=generator
            ),
            "timestep": torch.full((batch_size,), 500.0),
            "img_ids": grid_ids(side),
            "txt_ids": torch.zeros(length, 3),
        }
