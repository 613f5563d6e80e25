"""AuraFlow (AuraFlowTransformer2DModel): a stack of MM-DiT joint blocks (`joint_transformer_blocks`,
`num_mmdit_layers`) that return (text, image), then a stack of single blocks over the concatenated tokens
(`single_transformer_blocks`, `num_single_dit_layers`); both read only the shared timestep embedding, so a depth
cut is the stock class with fewer blocks. Each stack keeps at least one block (with no single block left the
model skips the concatenation, a different network).

The pipeline encodes prompts with UMT5 (256 tokens), passes 4-channel latents unpacked and timestep = sigma (the
model scales it by 1000), and doubles the batch for classifier-free guidance.
"""

from __future__ import annotations

import torch
from diffusers import AuraFlowTransformer2DModel

from diffprune.families.registry import LOSSES, TEXT_IMAGE, Family, Stack, register

TEXT_LENGTH = 256  # the pipeline's max_sequence_length
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(AuraFlowTransformer2DModel)
class AuraFlow(Family):
    name = "auraflow"
    stacks = (
        Stack("joint_transformer_blocks", "num_mmdit_layers", streams=TEXT_IMAGE),
        Stack("single_transformer_blocks", "num_single_dit_layers", kind="single_transformer_block"),
    )
    context_branches = ("ff_context",)
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or config.sample_size
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "encoder_hidden_states": torch.randn(
                batch_size, text_length or TEXT_LENGTH, config.joint_attention_dim, generator=generator
            ),
            "timestep": torch.full((batch_size,), 0.5),
        }
