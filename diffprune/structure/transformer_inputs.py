"""Example inputs for one forward of a diffusion transformer, built from its config (the transformer
counterpart of unet_inputs.py): shape probing, MAC counting and latency need "one denoiser call as the
pipeline makes it". Values are drawn on the CPU, then placed on the model's device and dtype.

Sizes the config does not hold come from the pipeline where one is given: its latent size
(`default_sample_size`, FLUX's packed 2x2 patches) and its text length.
"""

from __future__ import annotations

import torch

from diffprune.devices import Placement, place

DEFAULT_TEXT_LENGTH = 77
FLUX_DEFAULT_LATENT = 128  # FLUX.1 at 1024x1024: 128x128 latents, packed into 64x64 tokens


def transformer_example_inputs(
    model,
    batch_size: int = 1,
    text_length: int | None = None,
    latent_size: int | None = None,
    generator: torch.Generator | None = None,
    placement: Placement | None = None,
) -> dict:
    """Keyword arguments for `model(**inputs)`, random values of the right shapes on the model's device and in
    its dtype (integer tensors on its device); `placement` puts them elsewhere."""
    config, name = model.config, type(model).__name__
    length = text_length or DEFAULT_TEXT_LENGTH

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    timestep = torch.full((batch_size,), 500, dtype=torch.long)
    if "Flux" in name:
        side = (latent_size or FLUX_DEFAULT_LATENT) // 2
        rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        inputs = {
            "hidden_states": randn(batch_size, side * side, config.in_channels),
            "encoder_hidden_states": randn(batch_size, length, config.joint_attention_dim),
            "pooled_projections": randn(batch_size, config.pooled_projection_dim),
            "timestep": torch.full((batch_size,), 0.5),
            "img_ids": torch.stack([torch.zeros(side * side), rows.flatten(), cols.flatten()], dim=1).float(),
            "txt_ids": torch.zeros(length, 3),
        }
        if config.get("guidance_embeds"):
            inputs["guidance"] = torch.full((batch_size,), 3.5)
        return place(inputs, placement or model)
    size = latent_size or config.sample_size
    inputs = {"hidden_states": randn(batch_size, config.in_channels, size, size), "timestep": timestep}
    if "SD3" in name:
        inputs["encoder_hidden_states"] = randn(batch_size, length, config.joint_attention_dim)
        inputs["pooled_projections"] = randn(batch_size, config.pooled_projection_dim)
    elif "DiT" in name:
        inputs["class_labels"] = torch.zeros(batch_size, dtype=torch.long)
    else:  # PixArt, Sana: T5/Gemma states of caption_channels width
        inputs["encoder_hidden_states"] = randn(batch_size, length, config.caption_channels)
        if "PixArt" in name:
            extra = None
            # None in the config means "decided by sample_size" (128, PixArt-alpha 1024); the model knows.
            if getattr(model, "use_additional_conditions", config.get("use_additional_conditions")):
                extra = torch.tensor([[size * 8.0, size * 8.0]] * batch_size)
            inputs["added_cond_kwargs"] = {
                "resolution": extra,
                "aspect_ratio": None if extra is None else torch.ones(batch_size, 1),
            }
    return place(inputs, placement or model)
