"""Nucleus-Image (NucleusMoEImageTransformer2DModel): one stack of image-stream blocks (`transformer_blocks`,
`num_layers`) that attend to a per-block projection of the text and whose feed-forward is dense or a
mixture of experts by position: `dense_moe_strategy` decides it from the block's index and `num_layers` (by
default the first three and the last block are dense), and `capacity_factors` may list one value per block.

Trap: a stock config with a lower `num_layers` builds the dense and expert blocks at other positions than the
kept blocks have (removing block 1 moves expert block 3 to position 2, which the stock class builds dense), so a
depth cut's weights do not fit its own config. Blocks are therefore cut in place (replaced by a bypass, the
Pruned* class), which keeps every block's position and is exact.

The pipeline passes packed latent tokens, `img_shapes` (frames, height, width in tokens), the Qwen3-VL states with
their mask, timestep = sigma in [0, 1], and one call per prompt and per negative prompt for guidance.
"""

from __future__ import annotations

import torch
from diffusers import NucleusMoEImageTransformer2DModel

from diffprune.families.flux import DEFAULT_LATENT
from diffprune.families.registry import LOSSES, REPLACE, Family, Stack, register

TEXT_LENGTH = 512
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(NucleusMoEImageTransformer2DModel)
class NucleusMoEImage(Family):
    name = "nucleusmoe-image"
    stacks = (Stack("transformer_blocks", "num_layers", cut=REPLACE),)
    guidance = "separate"
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        length = text_length or TEXT_LENGTH
        side = (latent_size or DEFAULT_LATENT) // config.patch_size
        return {
            "hidden_states": torch.randn(batch_size, side * side, config.in_channels, generator=generator),
            "img_shapes": [(1, side, side)] * batch_size,
            "encoder_hidden_states": torch.randn(batch_size, length, config.joint_attention_dim, generator=generator),
            "encoder_hidden_states_mask": torch.ones(batch_size, length, dtype=torch.bool),
            "timestep": torch.full((batch_size,), 0.5),
        }
