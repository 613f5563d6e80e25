"""Stable Diffusion 3 / 3.5 (SD3Transformer2DModel): one stack of joint (MM-DiT) blocks over an image and a text
stream; a depth cut is the stock class with fewer blocks.

Traps a depth cut must keep:
  * the last joint block is built with `context_pre_only` (it drops the text stream); a stock config always
    builds its last block that way, so that block is not a unit;
  * SD3.5's `dual_attention_layers` lists blocks by position: they are renumbered;
  * SD3.5's skip-layer guidance (`skip_guidance_layers` of the pipeline call) also names blocks by position;
    it is a call argument, not saved state, so the model card tells users to renumber theirs.

The pipeline encodes prompts with CLIP-L, CLIP-G and T5 (`encode_prompt`, its call's defaults: 256 T5 tokens)
and passes timestep = sigma x 1000.
"""

from __future__ import annotations

import torch
from diffusers import SD3Transformer2DModel

from diffprune.families.registry import DEFAULT_TEXT_LENGTH, TEXT_IMAGE, Family, Stack, call_defaults, register


def renumber_positions(positions, removed: list[int]) -> tuple[int, ...]:
    """Block positions after removing `removed` (kept ones move up; removed ones are gone)."""
    return tuple(i - sum(r < i for r in removed) for i in positions if i not in removed)


@register(SD3Transformer2DModel)
class SD3(Family):
    name = "sd3"
    stacks = (Stack("transformer_blocks", "num_layers", streams=TEXT_IMAGE),)
    context_branches = ("ff_context",)

    def fixed_blocks(self, model):
        return {
            f"transformer_blocks.{index}"
            for index, block in enumerate(model.transformer_blocks)
            if getattr(block, "context_pre_only", False)
        }

    def edit_depth_cut(self, cut, removed):
        dual = cut.config.get("dual_attention_layers")
        if dual:
            cut.register_to_config(
                dual_attention_layers=renumber_positions(dual, removed.get("transformer_blocks", []))
            )

    def text_length(self, pipeline):
        """CLIP's tokens (padded to its tokenizer's length) joined by T5's (padded to the call's
        `max_sequence_length`; zeros when the pipeline has no T5)."""
        clip = super().text_length(pipeline) or DEFAULT_TEXT_LENGTH
        return clip + call_defaults(pipeline, ("max_sequence_length",)).get("max_sequence_length", 256)

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or config.sample_size
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "timestep": torch.full((batch_size,), 500, dtype=torch.long),
            "encoder_hidden_states": torch.randn(
                batch_size, text_length or DEFAULT_TEXT_LENGTH, config.joint_attention_dim, generator=generator
            ),
            "pooled_projections": torch.randn(batch_size, config.pooled_projection_dim, generator=generator),
        }

    def encode(self, pipeline, prompts, device):
        defaults = call_defaults(pipeline, ("max_sequence_length", "clip_skip"))
        embeds, _, pooled, _ = pipeline.encode_prompt(
            prompts, None, None, device=device, do_classifier_free_guidance=False, **defaults
        )
        return {"encoder_hidden_states": embeds, "pooled_projections": pooled}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        return model(hidden_states=noisy, timestep=timesteps, **conditioning).sample
