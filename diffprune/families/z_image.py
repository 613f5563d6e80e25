"""Z-Image (ZImageTransformer2DModel; Z-Image-Turbo, Z-Image-Edit): a noise refiner over the image tokens and a
context refiner over the caption tokens (`noise_refiner`, `context_refiner`, both counted by one key,
`n_refiner_layers`), then the main stack over both concatenated (`layers`, `n_layers`). Main blocks read only the
shared timestep embedding, masks and rotary positions, so a depth cut of `layers` is the stock class with fewer
blocks; the refiners' blocks stay (one count for two lists: no stock config drops a block of one), their branches
are units. Attention and feed-forward outputs pass through an RMSNorm before their gated residual
(`attention_norm2`, `ffn_norm2`): those norms are scale-invariant, so their branches are gated after the norm.
Each block keeps a `layer_id` attribute from its construction, which nothing reads.

The pipeline calls the model with a list of per-sample latents [channels, 1, height, width], a list of per-sample
Qwen3 caption states (up to 512 tokens) and time = 1 - sigma in [0, 1], and gets a list of per-sample predictions
back; it doubles the batch for classifier-free guidance. A ControlNet adds its residuals after the main blocks it
names by position, so a cut model needs a ControlNet made for its depth.
"""

from __future__ import annotations

import torch
from diffusers import ZImageTransformer2DModel

from diffprune.families.registry import LOSSES, Family, Stack, register

TEXT_LENGTH = 512  # the pipeline's max_sequence_length
DEFAULT_LATENT = 128  # 1024x1024 through the 8x VAE
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(ZImageTransformer2DModel)
class ZImage(Family):
    name = "z-image"
    stacks = (
        Stack("noise_refiner", None, cut=None),
        Stack("context_refiner", None, cut=None),
        Stack("layers", "n_layers"),
    )
    branch_gates = {"attention": "attention_norm2", "feed_forward": "ffn_norm2"}
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        """The per-sample lists as one tensor each (the model iterates over the first axis, as over a list)."""
        config = model.config
        size = latent_size or DEFAULT_LATENT
        return {
            "x": torch.randn(batch_size, config.in_channels, 1, size, size, generator=generator),
            "t": torch.full((batch_size,), 0.5),
            "cap_feats": torch.randn(batch_size, text_length or TEXT_LENGTH, config.cap_feat_dim, generator=generator),
        }
