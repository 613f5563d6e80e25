"""FLUX.1 (FluxTransformer2DModel): a stack of double-stream blocks (`transformer_blocks`, `num_layers`) and one
of single-stream blocks over the concatenated tokens (`single_transformer_blocks`, `num_single_layers`), both
sharing the model-level modulation inputs; a depth cut is the stock class with fewer blocks (FLUX.1 Lite and
Flux-Mini cut it this way). Each stack keeps at least one block.

The pipeline encodes prompts with CLIP (pooled) and T5, packs 2x2 latent patches into tokens, passes
timestep = sigma (the model scales it by 1000), position ids of the image grid, and, for guidance-distilled
models (FLUX.1-dev), the guidance scale as an input: one call per step, no batch doubling.
"""

from __future__ import annotations

import math

import torch
from diffusers import FluxTransformer2DModel

from diffprune.errors import DiffpruneError
from diffprune.families.registry import DEFAULT_TEXT_LENGTH, TEXT_IMAGE, Family, Stack, call_defaults, register

DEFAULT_LATENT = 128  # FLUX.1 at 1024x1024: 128x128 latents, packed into 64x64 tokens


def grid_ids(side: int) -> torch.Tensor:
    """Position ids [side * side, 3] of a square grid of packed latent tokens, as FluxPipeline makes them."""
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    return torch.stack([torch.zeros(side * side), rows.flatten(), cols.flatten()], dim=1).float()


def square_grid(noisy: torch.Tensor, family: str) -> int:
    """The side of the square token grid `noisy` ([batch, tokens, channels]) packs, or a one-line error."""
    grid = math.isqrt(noisy.shape[1]) if noisy.ndim == 3 else 0
    if noisy.ndim != 3 or grid * grid != noisy.shape[1]:
        raise DiffpruneError(
            f"{family} latents of shape {tuple(noisy.shape)} are not a square grid of packed tokens; calibrate and "
            "distill at the pipeline's default (square) size"
        )
    return grid


@register(FluxTransformer2DModel)
class Flux(Family):
    name = "flux"
    stacks = (
        Stack("transformer_blocks", "num_layers", streams=TEXT_IMAGE),
        Stack("single_transformer_blocks", "num_single_layers", kind="single_transformer_block", streams=TEXT_IMAGE),
    )
    context_branches = ("ff_context",)
    guidance = "embedded"
    pads_text_to_max_sequence_length = True

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        length = text_length or DEFAULT_TEXT_LENGTH
        side = (latent_size or DEFAULT_LATENT) // 2
        inputs = {
            "hidden_states": torch.randn(batch_size, side * side, config.in_channels, generator=generator),
            "encoder_hidden_states": torch.randn(batch_size, length, config.joint_attention_dim, generator=generator),
            "pooled_projections": torch.randn(batch_size, config.pooled_projection_dim, generator=generator),
            "timestep": torch.full((batch_size,), 0.5),
            "img_ids": grid_ids(side),
            "txt_ids": torch.zeros(length, 3),
        }
        if config.get("guidance_embeds"):
            inputs["guidance"] = torch.full((batch_size,), 3.5)
        return inputs

    def encode(self, pipeline, prompts, device):
        defaults = call_defaults(pipeline, ("max_sequence_length",))
        embeds, pooled, _ = pipeline.encode_prompt(prompts, None, device=device, **defaults)
        return {"encoder_hidden_states": embeds, "pooled_projections": pooled}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        """`noisy` in FLUX's packed layout [batch, tokens, 4 x channels], as its final latents are, square as at
        the pipeline's default size (height = width)."""
        grid = square_grid(noisy, "FLUX")
        image_ids = pipeline._prepare_latent_image_ids(noisy.shape[0], grid, grid, noisy.device, noisy.dtype)
        text = conditioning["encoder_hidden_states"]
        text_ids = torch.zeros(text.shape[1], 3, device=noisy.device, dtype=noisy.dtype)
        guidance = None
        if pipeline.transformer.config.get("guidance_embeds"):
            scale = call_defaults(pipeline, ("guidance_scale",)).get("guidance_scale", 3.5)
            guidance = torch.full((noisy.shape[0],), float(scale), device=noisy.device, dtype=noisy.dtype)
        return model(
            hidden_states=noisy,
            timestep=timesteps / 1000,  # FluxPipeline passes sigma; the model scales it back up
            guidance=guidance,
            img_ids=image_ids,
            txt_ids=text_ids,
            **conditioning,
        ).sample
