"""CogView3-Plus (CogView3PlusTransformer2DModel): one stack of joint blocks (`transformer_blocks`, `num_layers`)
that return (image, text), each reading only the shared timestep-and-size embedding; a depth cut is the stock
class with fewer blocks. Its feed-forward runs once over both streams concatenated (a `feed_forward` branch of
both); its attention returns one output per stream.

The pipeline encodes prompts with T5 (224 tokens), passes the scheduler's integer timestep, SDXL-like size
conditions (original size, target size, crop corner) and doubles the batch for classifier-free guidance.
"""

from __future__ import annotations

import torch
from diffusers import CogView3PlusTransformer2DModel

from diffprune.families.registry import IMAGE_TEXT, LOSSES, Family, Stack, register

TEXT_LENGTH = 224  # the pipeline's max_sequence_length
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


def size_conditions(batch_size: int, pixels: int) -> dict[str, torch.Tensor]:
    """Original size, target size and crop corner as the CogView pipelines pass them for a square image."""
    side = torch.tensor([[float(pixels), float(pixels)]] * batch_size)
    return {"original_size": side, "target_size": side.clone(), "crop_coords": torch.zeros(batch_size, 2)}


@register(CogView3PlusTransformer2DModel)
class CogView3Plus(Family):
    name = "cogview3plus"
    stacks = (Stack("transformer_blocks", "num_layers", streams=IMAGE_TEXT),)
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or config.sample_size
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "encoder_hidden_states": torch.randn(
                batch_size, text_length or TEXT_LENGTH, config.text_embed_dim, generator=generator
            ),
            "timestep": torch.full((batch_size,), 500, dtype=torch.long),
            **size_conditions(batch_size, size * 8),
        }
