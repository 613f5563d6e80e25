"""Sana (SanaTransformer2DModel): one stack of linear-attention blocks with cross-attention to Gemma-2 states;
a depth cut is the stock class with fewer blocks (SANA 1.5 prunes 60 -> 40/30/20 blocks this way).

The pipeline encodes prompts with Gemma-2 and its complex human instruction (`encode_prompt`, the call's
defaults) and passes timestep x `timestep_scale`.
"""

from __future__ import annotations

import torch
from diffusers import SanaTransformer2DModel

from diffprune.families.pixart import encode_negative_with_mask, encode_with_mask
from diffprune.families.registry import DEFAULT_TEXT_LENGTH, Family, Stack, register


@register(SanaTransformer2DModel)
class Sana(Family):
    name = "sana"
    stacks = (Stack("transformer_blocks", "num_layers"),)
    pads_text_to_max_sequence_length = True

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or config.sample_size
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "timestep": torch.full((batch_size,), 500, dtype=torch.long),
            "encoder_hidden_states": torch.randn(
                batch_size, text_length or DEFAULT_TEXT_LENGTH, config.caption_channels, generator=generator
            ),
        }

    def encode(self, pipeline, prompts, device):
        return encode_with_mask(pipeline, prompts, device)

    def encode_negative(self, pipeline, device):
        return encode_negative_with_mask(pipeline, device)

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        scale = pipeline.transformer.config.get("timestep_scale") or 1.0
        return model(noisy, timestep=timesteps * scale, **conditioning).sample
