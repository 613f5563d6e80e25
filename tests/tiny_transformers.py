"""Tiny diffusion-transformer denoisers of every supported family, with inputs shaped as their pipelines make
them, built offline with the stock diffusers classes (random weights, seeded)."""

import torch
from diffusers import (
    DiTTransformer2DModel,
    FluxTransformer2DModel,
    PixArtTransformer2DModel,
    SanaTransformer2DModel,
    SD3Transformer2DModel,
)

BATCH, TEXT_TOKENS, TEXT_DIM = 2, 5, 16


def _text(generator):
    return torch.randn(BATCH, TEXT_TOKENS, TEXT_DIM, generator=generator)


def tiny_pixart():
    model = PixArtTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=4,
        cross_attention_dim=16,
        sample_size=8,
        patch_size=2,
        caption_channels=TEXT_DIM,
        use_additional_conditions=False,
        norm_type="ada_norm_single",
    )

    def inputs(generator):
        return dict(
            hidden_states=torch.randn(BATCH, 4, 8, 8, generator=generator),
            encoder_hidden_states=_text(generator),
            timestep=torch.tensor([10, 500]),
            added_cond_kwargs={"resolution": None, "aspect_ratio": None},
        )

    return model, inputs


def tiny_dit():
    model = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=4,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=10,
    )

    def inputs(generator):
        return dict(
            hidden_states=torch.randn(BATCH, 4, 8, 8, generator=generator),
            timestep=torch.tensor([10, 500]),
            class_labels=torch.tensor([1, 7]),
        )

    return model, inputs


def tiny_sd3():
    model = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=5,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        caption_projection_dim=16,
        pooled_projection_dim=8,
        out_channels=4,
        pos_embed_max_size=16,
        dual_attention_layers=(0, 2),
    )

    def inputs(generator):
        return dict(
            hidden_states=torch.randn(BATCH, 4, 8, 8, generator=generator),
            encoder_hidden_states=_text(generator),
            pooled_projections=torch.randn(BATCH, 8, generator=generator),
            timestep=torch.tensor([10, 500]),
        )

    return model, inputs


def tiny_flux():
    model = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=3,
        num_single_layers=4,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        pooled_projection_dim=8,
        guidance_embeds=True,
        axes_dims_rope=(2, 2, 4),
    )

    def inputs(generator):
        tokens = 16  # a 4x4 grid of packed latents
        rows, cols = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
        image_ids = torch.stack([torch.zeros(tokens), rows.flatten(), cols.flatten()], dim=1).float()
        return dict(
            hidden_states=torch.randn(BATCH, tokens, 16, generator=generator),
            encoder_hidden_states=_text(generator),
            pooled_projections=torch.randn(BATCH, 8, generator=generator),
            timestep=torch.tensor([0.1, 0.7]),
            img_ids=image_ids,
            txt_ids=torch.zeros(TEXT_TOKENS, 3),
            guidance=torch.tensor([3.5, 3.5]),
        )

    return model, inputs


def tiny_sana():
    model = SanaTransformer2DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=TEXT_DIM,
        sample_size=8,
        patch_size=1,
    )

    def inputs(generator):
        return dict(
            hidden_states=torch.randn(BATCH, 4, 8, 8, generator=generator),
            encoder_hidden_states=_text(generator),
            timestep=torch.tensor([10, 500]),
        )

    return model, inputs


TINY_TRANSFORMERS = {"pixart": tiny_pixart, "dit": tiny_dit, "sd3": tiny_sd3, "flux": tiny_flux, "sana": tiny_sana}
