"""CogView4 (CogView4Transformer2DModel): one stack of two-stream blocks (`transformer_blocks`, `num_layers`);
a depth cut is the stock class with fewer blocks.

A block is called positionally, `block(hidden_states, encoder_hidden_states, temb, ...)`, and returns (image,
text) (IMAGE_TEXT). Its attention runs over both streams and returns one output per stream (a joint attention,
gated and removed on both); ONE feed-forward `ff` serves both streams, called once on the image tokens and once
on the text tokens, so its gate and its removal (ZeroBranch) act on both calls (it is one unit: the weights are
shared). The AdaLN modulation (`norm1`) stays.

The pipeline encodes prompts with GLM-4 (`encode_prompt`: padded on the left to the longest prompt of the batch,
rounded up to a multiple of 16, no attention mask), passes timestep = sigma x 1000 and SDXL-style size
conditions: original_size = target_size = the image size in pixels, crop_coords = (0, 0), in the text
embeddings' dtype. Classifier-free guidance is two calls per step.
"""

from __future__ import annotations

import torch
from diffusers import CogView4Transformer2DModel

from diffprune.families.registry import DEFAULT_TEXT_LENGTH, IMAGE_TEXT, Family, Stack, call_defaults, register

VAE_SCALE_FACTOR = 8  # CogView4's VAE: the pipeline's size conditions are in pixels


def size_conditions(batch_size: int, height: int, width: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """original_size, target_size and crop_coords as CogView4Pipeline passes them at its defaults."""
    size = like.new_tensor([[height, width]]).repeat(batch_size, 1)
    return {"original_size": size, "target_size": size.clone(), "crop_coords": torch.zeros_like(size)}


@register(CogView4Transformer2DModel)
class CogView4(Family):
    name = "cogview4"
    stacks = (Stack("transformer_blocks", "num_layers", streams=IMAGE_TEXT),)
    guidance = "separate"

    def text_length(self, pipeline):
        """The call pads the prompt's GLM tokens to a multiple of 16 (a typical prompt: the tokenizer's length,
        else DEFAULT_TEXT_LENGTH)."""
        return -(-(super().text_length(pipeline) or DEFAULT_TEXT_LENGTH) // 16) * 16

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or config.sample_size
        hidden = torch.randn(batch_size, config.in_channels, size, size, generator=generator)
        return {
            "hidden_states": hidden,
            "encoder_hidden_states": torch.randn(
                batch_size, text_length or DEFAULT_TEXT_LENGTH, config.text_embed_dim, generator=generator
            ),
            "timestep": torch.full((batch_size,), 500.0),
            **size_conditions(batch_size, size * VAE_SCALE_FACTOR, size * VAE_SCALE_FACTOR, hidden),
        }

    def encode(self, pipeline, prompts, device):
        defaults = call_defaults(pipeline, ("max_sequence_length",))
        embeds, _ = pipeline.encode_prompt(prompts, do_classifier_free_guidance=False, device=device, **defaults)
        return {"encoder_hidden_states": embeds}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        text = conditioning["encoder_hidden_states"]
        factor = pipeline.vae_scale_factor
        sizes = size_conditions(noisy.shape[0], noisy.shape[-2] * factor, noisy.shape[-1] * factor, text)
        return model(hidden_states=noisy, timestep=timesteps, **sizes, **conditioning).sample
