"""Ovis-Image (OvisImageTransformer2DModel): FLUX's layout with Qwen3 text and SwiGLU feed-forwards:
double-stream blocks (`transformer_blocks`, `num_layers`) and single-stream blocks (`single_transformer_blocks`,
`num_single_layers`), both returning (text, image) and reading only the shared timestep embedding and rotary
positions; a depth cut is the stock class with fewer blocks.

The pipeline packs 2x2 latent patches into tokens as FLUX does, passes timestep = sigma (the model scales it by
1000) and calls the model once per prompt and once per negative prompt for guidance.
"""

from __future__ import annotations

from diffusers import OvisImageTransformer2DModel

from diffprune.families.bria import FLUX_LIKE_STACKS, NOT_DECLARED, packed_inputs
from diffprune.families.registry import LOSSES, Family, register

TEXT_LENGTH = 256  # the pipeline's max_sequence_length


@register(OvisImageTransformer2DModel)
class OvisImage(Family):
    name = "ovis-image"
    stacks = FLUX_LIKE_STACKS
    context_branches = ("ff_context",)
    guidance = "separate"
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        return packed_inputs(model, batch_size, text_length, latent_size, generator, 0.5, TEXT_LENGTH)
