"""Ideogram 4 (Ideogram4Transformer2DModel): one stack of single-stream blocks over one packed sequence of text
and image tokens (`layers`, `num_layers`); every block reads the shared adaLN input, so a depth cut is the stock
class with fewer blocks. Attention and feed-forward outputs pass through an RMSNorm before their gated residual
(`attention_norm2`, `ffn_norm2`): those norms are scale-invariant, so their branches are gated after the norm.

The pipeline runs two of these models: `transformer` on the prompt and `unconditional_transformer` on the negative
prompt (classifier-free guidance by two models). diffprune cuts the one it is given; the other stays as it is.
Each call takes the packed sequence (text positions zero in `hidden_states`, image positions zero in
`encoder_hidden_states`), multi-axis positions, segment ids and per-token roles, and time in [0, 1].
"""

from __future__ import annotations

import torch
from diffusers import Ideogram4Transformer2DModel
from diffusers.models.transformers.transformer_ideogram4 import LLM_TOKEN_INDICATOR, OUTPUT_IMAGE_INDICATOR

from diffprune.families.flux import grid_ids
from diffprune.families.registry import LOSSES, Family, Stack, register

TEXT_LENGTH = 256
DEFAULT_GRID = 64  # image tokens per side at 1024x1024
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(Ideogram4Transformer2DModel)
class Ideogram4(Family):
    name = "ideogram4"
    stacks = (Stack("layers", "num_layers"),)
    branch_gates = {"attention": "attention_norm2", "feed_forward": "ffn_norm2"}
    guidance = "separate"
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        length = text_length or TEXT_LENGTH
        side = (latent_size // 2) if latent_size else DEFAULT_GRID
        total = length + side * side
        roles = torch.tensor([LLM_TOKEN_INDICATOR] * length + [OUTPUT_IMAGE_INDICATOR] * (side * side))
        positions = torch.cat([torch.zeros(length, 3), grid_ids(side)]).long()
        return {
            "hidden_states": torch.randn(batch_size, total, config.in_channels, generator=generator),
            "timestep": torch.full((batch_size,), 0.5),
            "encoder_hidden_states": torch.randn(batch_size, total, config.llm_features_dim, generator=generator),
            "position_ids": positions.expand(batch_size, total, 3),
            "segment_ids": torch.zeros(batch_size, total, dtype=torch.long),
            "indicator": roles.expand(batch_size, total),
        }
