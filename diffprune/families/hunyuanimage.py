"""HunyuanImage 2.1 and its refiner (HunyuanImageTransformer2DModel): a stack of double-stream blocks
(`transformer_blocks`, `num_layers`) and one of single-stream blocks (`single_transformer_blocks`,
`num_single_layers`), both returning (image, text) and reading only the shared timestep (and guidance)
embedding, the text mask and rotary positions; a depth cut is the stock class with fewer blocks. The text
token refiner inside `context_embedder` is not cut. A single block's attention returns one output per stream
(a joint attention) that feeds a concatenation with the MLP branch, as FLUX's single blocks do.

The text-to-image pipeline passes 64-channel latents of a 32x VAE unpacked ([batch, 64, height, width]), Qwen2.5-VL
states (1000 tokens) with their mask and, where configured, ByT5 glyph states; the refiner pipeline passes
latents with a frame axis of 1 (its patch size has three entries). The timestep is the scheduler's (0-1000).
"""

from __future__ import annotations

import torch
from diffusers import HunyuanImageTransformer2DModel

from diffprune.families.registry import IMAGE_TEXT, LOSSES, Family, Stack, register

TEXT_LENGTH = 1000  # the text-to-image pipeline's tokenizer_max_length
DEFAULT_LATENT = 64  # 2048x2048 through the 32x VAE
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(HunyuanImageTransformer2DModel)
class HunyuanImage(Family):
    name = "hunyuanimage"
    stacks = (
        Stack("transformer_blocks", "num_layers", streams=IMAGE_TEXT),
        Stack("single_transformer_blocks", "num_single_layers", kind="single_transformer_block", streams=IMAGE_TEXT),
    )
    context_branches = ("ff_context",)
    guidance = "embedded"
    unsupported = {LOSSES: NOT_DECLARED}

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or DEFAULT_LATENT
        length = text_length or TEXT_LENGTH
        frames = (1,) if len(config.patch_size) == 3 else ()
        inputs = {
            "hidden_states": torch.randn(batch_size, config.in_channels, *frames, size, size, generator=generator),
            "timestep": torch.full((batch_size,), 500.0),
            "encoder_hidden_states": torch.randn(batch_size, length, config.text_embed_dim, generator=generator),
            "encoder_attention_mask": torch.ones(batch_size, length, dtype=torch.long),
        }
        if config.text_embed_2_dim is not None:
            inputs["encoder_hidden_states_2"] = torch.randn(
                batch_size, 16, config.text_embed_2_dim, generator=generator
            )
            inputs["encoder_attention_mask_2"] = torch.ones(batch_size, 16, dtype=torch.long)
        if config.guidance_embeds:
            inputs["guidance"] = torch.full((batch_size,), 3500.0)
        if config.use_meanflow:
            inputs["timestep_r"] = torch.full((batch_size,), 400.0)
        return inputs
