"""Tiny denoisers of the families beyond the named ones (AuraFlow, Bria, LongCat-Image, Ovis-Image, CogView3-Plus,
HunyuanImage, Krea 2, ERNIE-Image, Ideogram 4, GLM-Image, ...): the stock diffusers classes at tiny widths with
their real block layouts (2-4 blocks per stack), random weights, and the inputs their pipelines hand them, drawn
by the family's own `example_inputs` at a tiny latent size, with a different timestep per sample."""

import torch
from diffusers import (
    AceStepTransformer1DModel,
    AuraFlowTransformer2DModel,
    BriaFiboTransformer2DModel,
    BriaTransformer2DModel,
    CogView3PlusTransformer2DModel,
    ErnieImageTransformer2DModel,
    GlmImageTransformer2DModel,
    HunyuanImageTransformer2DModel,
    Ideogram4Transformer2DModel,
    Krea2Transformer2DModel,
    LongCatImageTransformer2DModel,
    NucleusMoEImageTransformer2DModel,
    OvisImageTransformer2DModel,
    ZImageTransformer2DModel,
)
from tiny_transformers import BATCH, TEXT_DIM, TEXT_TOKENS

from diffprune.families import example_inputs

LATENT = 8  # latent side: 4x4 packed tokens or 4x4 patches of 2x2


def _with_inputs(model, latent_size=LATENT, timesteps=(0.2, 0.7), timestep_key="timestep"):
    """(model, inputs(generator)): the family's example call at a tiny size, a different timestep per sample in the
    model's own scale (integer-like where the example passes integers)."""

    def inputs(generator):
        drawn = example_inputs(model, BATCH, TEXT_TOKENS, latent_size, generator)
        example = drawn[timestep_key]
        scale = 1000 if example.max() > 1 else 1
        drawn[timestep_key] = (torch.tensor(timesteps) * scale).to(example.dtype)
        return drawn

    return model, inputs


def _randomize_zero_init(model, std=0.05):
    """Give weights the model initialises to zero (adaLN projections, output layers) random values, as a trained
    model has; with them at zero every block would be the identity and every cut exact by accident."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.numel() and not parameter.any():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return model


def tiny_auraflow():
    model = AuraFlowTransformer2DModel(
        sample_size=LATENT,
        patch_size=2,
        in_channels=4,
        num_mmdit_layers=3,
        num_single_dit_layers=4,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        caption_projection_dim=16,
        out_channels=4,
        pos_embed_max_size=64,
    )
    return _with_inputs(model)


def _flux_like(cls, **extra):
    model = cls(
        patch_size=1,
        in_channels=16,
        num_layers=3,
        num_single_layers=4,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        axes_dims_rope=[2, 2, 4],
        **extra,
    )
    return model


def tiny_bria():
    return _with_inputs(_flux_like(BriaTransformer2DModel), timesteps=(0.2, 0.7))


def tiny_longcat_image():
    return _with_inputs(_flux_like(LongCatImageTransformer2DModel, pooled_projection_dim=16))


def tiny_ovis_image():
    return _with_inputs(_flux_like(OvisImageTransformer2DModel))


def tiny_cogview3plus():
    model = CogView3PlusTransformer2DModel(
        patch_size=2,
        in_channels=4,
        num_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        out_channels=4,
        text_embed_dim=TEXT_DIM,
        time_embed_dim=16,
        condition_dim=8,
        pos_embed_max_size=16,
        sample_size=LATENT,
    )
    return _with_inputs(model)


def tiny_hunyuanimage():
    model = HunyuanImageTransformer2DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=3,
        num_single_layers=3,
        num_refiner_layers=1,
        patch_size=(1, 1),
        guidance_embeds=True,
        text_embed_dim=TEXT_DIM,
        text_embed_2_dim=12,
        rope_axes_dim=(4, 4),
    )
    return _with_inputs(model, latent_size=4)


def tiny_krea2():
    model = Krea2Transformer2DModel(
        in_channels=16,
        num_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=32,
        timestep_embed_dim=16,
        text_hidden_dim=TEXT_DIM,
        num_text_layers=3,
        text_num_attention_heads=2,
        text_num_key_value_heads=2,
        text_intermediate_size=32,
        num_layerwise_text_blocks=1,
        num_refiner_text_blocks=1,
        axes_dims_rope=(2, 2, 4),
    )
    return _with_inputs(_randomize_zero_init(model))


def tiny_ernie_image():
    model = ErnieImageTransformer2DModel(
        hidden_size=16,
        num_attention_heads=2,
        num_layers=3,
        ffn_hidden_size=32,
        in_channels=8,
        out_channels=8,
        patch_size=1,
        text_in_dim=12,
        rope_axes_dim=(2, 2, 4),
    )
    return _with_inputs(_randomize_zero_init(model), latent_size=4)


def tiny_ideogram4():
    model = Ideogram4Transformer2DModel(
        in_channels=8,
        num_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        intermediate_size=32,
        adaln_dim=16,
        llm_features_dim=24,
        mrope_section=(2, 1, 1),
    )
    return _with_inputs(_randomize_zero_init(model))


def tiny_glm_image():
    model = GlmImageTransformer2DModel(
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        text_embed_dim=TEXT_DIM,
        time_embed_dim=16,
        condition_dim=8,
        prior_vq_quantizer_codebook_size=32,
    )
    return _with_inputs(model)


def tiny_nucleusmoe_image(num_layers: int = 6):
    """Blocks 3 and 4 are mixtures of experts (the default strategy keeps the first three and the last dense)."""
    model = NucleusMoEImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        num_layers=num_layers,
        attention_head_dim=16,
        num_attention_heads=3,  # width 48: the dense feed-forward's width rounds down to a multiple of 128
        joint_attention_dim=12,  # not the width: the per-block text projection changes shape
        axes_dims_rope=(4, 6, 6),
        num_experts=4,
        moe_intermediate_dim=16,
        capacity_factors=2.0,  # expert-choice routing: each expert takes half the tokens
    )
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():  # the experts' weights are allocated uninitialised (a checkpoint fills them)
        for name, parameter in model.named_parameters():
            if ".experts." in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return _with_inputs(_randomize_zero_init(model))


def tiny_z_image():
    """Two refiner blocks per refiner (one count for both) and three main blocks."""
    model = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=4,
        dim=16,
        n_layers=3,
        n_refiner_layers=2,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=TEXT_DIM,
        axes_dims=[2, 2, 4],
        axes_lens=[64, 16, 16],
    )
    return _with_inputs(_randomize_zero_init(model), timestep_key="t")


def tiny_bria_fibo():
    model = BriaFiboTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=3,
        num_single_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        axes_dims_rope=[2, 2, 4],
        text_encoder_dim=12,
    )
    return _with_inputs(model)


def tiny_ace_step():
    """Four blocks: sliding-window (1 frame each way), full, sliding, full self-attention."""
    model = AceStepTransformer1DModel(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        in_channels=12,
        audio_acoustic_hidden_dim=4,
        patch_size=2,
        sliding_window=1,
        encoder_hidden_size=TEXT_DIM,
    )
    return _with_inputs(model, latent_size=12)  # 12 latent frames: 6 tokens after patching
