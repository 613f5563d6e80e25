"""GLM-Image (GlmImageTransformer2DModel): the diffusion decoder behind GLM-Image's autoregressive prior, one
stack of joint blocks (`transformer_blocks`, `num_layers`) that return (image, text); each block reads the shared
timestep-and-size embedding, and its feed-forward runs on each stream in turn (one `feed_forward` branch of both).
A depth cut is the stock class with fewer blocks: the pipeline sizes its per-block key/value cache (image editing)
from the cut's `num_layers`, so every kept block finds its own slot.

The pipeline passes latents unpacked, the glyph encoder's states, the prior's image token ids (one per latent
patch) with a drop mask (all dropped for the unconditional call), target size and crop corner, the scheduler's
timestep, and one call per condition for guidance.
"""

from __future__ import annotations

import torch
from diffusers import GlmImageTransformer2DModel

from diffprune.families.registry import IMAGE_TEXT, LOSSES, Family, Stack, register

TEXT_LENGTH = 128  # glyph tokens: the quoted text of a prompt
DEFAULT_LATENT = 128  # 1024x1024 through the 8x VAE
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(GlmImageTransformer2DModel)
class GlmImage(Family):
    name = "glm-image"
    stacks = (Stack("transformer_blocks", "num_layers", streams=IMAGE_TEXT),)
    guidance = "separate"
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or DEFAULT_LATENT
        tokens = (size // config.patch_size) ** 2
        pixels = torch.tensor([[size * 8.0, size * 8.0]] * batch_size)
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "encoder_hidden_states": torch.randn(
                batch_size, text_length or TEXT_LENGTH, config.text_embed_dim, generator=generator
            ),
            "prior_token_id": torch.randint(
                0, config.prior_vq_quantizer_codebook_size, (batch_size, tokens), generator=generator
            ),
            "prior_token_drop": torch.zeros(batch_size, tokens, dtype=torch.bool),
            "timestep": torch.full((batch_size,), 500.0),
            "target_size": pixels,
            "crop_coords": torch.zeros(batch_size, 2),
        }
