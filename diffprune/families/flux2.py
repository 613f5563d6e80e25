"""FLUX.2 (Flux2Transformer2DModel; Flux2Pipeline for FLUX.2 [dev], Flux2KleinPipeline for [klein]): a stack of
double-stream blocks (`transformer_blocks`, `num_layers`) and one of single-stream blocks over the concatenated
tokens (`single_transformer_blocks`, `num_single_layers`). Unlike FLUX.1, the modulation is computed once at
model level (`double_stream_modulation_*`, `single_stream_modulation`) and shared by every block of a stack, so no
block is addressed by position and a depth cut is the stock class with fewer blocks.

A double block returns (text, image). A single block is called with `encoder_hidden_states=None` on the
concatenated tokens and returns one tensor (not FLUX.1's (text, image) pair). Its only branch, `attn`, is a
parallel attention + MLP (one fused input projection, one fused output projection) whose output is the block's
whole residual update: removing it is removing the block, so the single blocks hold no branch units.

The pipelines encode prompts with a language model (Mistral-3 for [dev], Qwen3 for [klein]; hidden states of
three layers stacked, padded to the call's `max_sequence_length`), pass patchified latents as tokens with 4-axis
position ids, timestep = sigma (the model scales it by 1000) and, where the model embeds it ([dev]), the
guidance scale: one call per step. [klein] base models run classifier-free guidance as a second call instead.
"""

from __future__ import annotations

import torch
from diffusers import Flux2Transformer2DModel

from diffprune.families.flux import square_grid
from diffprune.families.registry import TEXT_IMAGE, Family, Stack, call_defaults, register

DEFAULT_LATENT = 128  # FLUX.2 at 1024x1024 (default_sample_size 128): 64x64 patchified latent tokens
DEFAULT_TEXT_LENGTH = 512  # both pipelines pad prompts to their call's max_sequence_length
DEFAULT_GUIDANCE = 4.0  # Flux2Pipeline's call default


def grid_ids(side: int) -> torch.Tensor:
    """Position ids (time, row, column, layer) [side * side, 4] of a square grid of latent tokens."""
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    zeros = torch.zeros(side * side, dtype=torch.long)
    return torch.stack([zeros, rows.flatten(), cols.flatten(), zeros], dim=1)


def text_ids(length: int) -> torch.Tensor:
    """Position ids [length, 4] of text tokens: (0, 0, 0, position)."""
    zeros = torch.zeros(length, dtype=torch.long)
    return torch.stack([zeros, zeros, zeros, torch.arange(length)], dim=1)


@register(Flux2Transformer2DModel)
class Flux2(Family):
    name = "flux2"
    stacks = (
        Stack("transformer_blocks", "num_layers", streams=TEXT_IMAGE),
        Stack("single_transformer_blocks", "num_single_layers", kind="single_transformer_block", branches=False),
    )
    context_branches = ("ff_context",)
    guidance = "embedded"  # [dev]; [klein] base models call twice (the latency batch is one sample either way)

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        length = text_length or DEFAULT_TEXT_LENGTH
        side = (latent_size or DEFAULT_LATENT) // 2
        inputs = {
            "hidden_states": torch.randn(batch_size, side * side, config.in_channels, generator=generator),
            "encoder_hidden_states": torch.randn(batch_size, length, config.joint_attention_dim, generator=generator),
            "timestep": torch.full((batch_size,), 0.5),
            "img_ids": grid_ids(side),
            "txt_ids": text_ids(length),
        }
        if config.get("guidance_embeds"):
            inputs["guidance"] = torch.full((batch_size,), DEFAULT_GUIDANCE)
        return inputs

    def encode(self, pipeline, prompts, device):
        defaults = call_defaults(pipeline, ("max_sequence_length", "text_encoder_out_layers"))
        embeds, _ = pipeline.encode_prompt(prompts, device=device, **defaults)
        return {"encoder_hidden_states": embeds}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        """`noisy` in the token layout [batch, tokens, 4 x channels], square as at the pipeline's default size."""
        grid = square_grid(noisy, "FLUX.2")
        text = conditioning["encoder_hidden_states"]
        batch = noisy.shape[0]
        image_ids = pipeline._prepare_latent_ids(noisy.new_empty(batch, 0, grid, grid)).to(noisy.device)
        guidance = None
        if pipeline.transformer.config.get("guidance_embeds"):
            scale = call_defaults(pipeline, ("guidance_scale",)).get("guidance_scale", DEFAULT_GUIDANCE)
            guidance = torch.full((batch,), float(scale), device=noisy.device, dtype=torch.float32)
        return model(
            hidden_states=noisy,
            timestep=timesteps / 1000,  # the pipelines pass sigma; the model scales it back up
            guidance=guidance,
            encoder_hidden_states=text,
            txt_ids=pipeline._prepare_text_ids(text).to(noisy.device),
            img_ids=image_ids,
            return_dict=False,
        )[0]
