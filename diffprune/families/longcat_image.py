"""LongCat-Image (LongCatImageTransformer2DModel): FLUX's layout with Qwen2.5-VL text: double-stream blocks
(`transformer_blocks`, `num_layers`) and single-stream blocks (`single_transformer_blocks`, `num_single_layers`),
both returning (text, image) and reading only the shared timestep embedding and rotary positions; a depth cut is
the stock class with fewer blocks. The model's per-block gradient-checkpointing flags (`use_checkpoint`,
`use_single_checkpoint`, plain lists built from the counts) are cut with the blocks.

The pipeline packs 2x2 latent patches into tokens as FLUX does, passes timestep = sigma (the model scales it by
1000) and calls the model once per prompt and once per negative prompt for guidance.
"""

from __future__ import annotations

from diffusers import LongCatImageTransformer2DModel

from diffprune.families.bria import FLUX_LIKE_STACKS, NOT_DECLARED, packed_inputs
from diffprune.families.registry import LOSSES, Family, register

TEXT_LENGTH = 512  # the pipeline's tokenizer_max_length

# Per-block lists the model keeps beside its stacks: {stack attribute: attribute of the list}.
CHECKPOINT_FLAGS = {"transformer_blocks": "use_checkpoint", "single_transformer_blocks": "use_single_checkpoint"}


@register(LongCatImageTransformer2DModel)
class LongCatImage(Family):
    name = "longcat-image"
    stacks = FLUX_LIKE_STACKS
    context_branches = ("ff_context",)
    guidance = "separate"
    unsupported = {LOSSES: NOT_DECLARED}

    def edit_depth_cut(self, cut, removed):
        for stack, flags in CHECKPOINT_FLAGS.items():
            gone = set(removed.get(stack, []))
            setattr(cut, flags, [flag for index, flag in enumerate(getattr(cut, flags)) if index not in gone])

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        return packed_inputs(model, batch_size, text_length, latent_size, generator, 0.5, TEXT_LENGTH)
