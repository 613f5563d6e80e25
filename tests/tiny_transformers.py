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


def tiny_pixart(sample_size: int = 8):
    model = PixArtTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=4,
        cross_attention_dim=16,
        sample_size=sample_size,
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


def tiny_sd3(num_layers: int = 5, dual_attention_layers=(0, 2)):
    model = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=num_layers,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        caption_projection_dim=16,
        pooled_projection_dim=8,
        out_channels=4,
        pos_embed_max_size=16,
        dual_attention_layers=dual_attention_layers,
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


def tiny_sana(sample_size: int = 8):
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
        sample_size=sample_size,
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


def model_and_inputs(build, *args, dtype: torch.dtype | None = None):
    """`build(*args)`'s model (weights from seed 0, in eval mode) and its inputs (from a generator seeded 1); with
    `dtype`, the model and the inputs' floating tensors in that dtype. Every builder of a tiny denoiser in these
    tests returns (model, make_inputs) as TINY_TRANSFORMERS' do."""
    torch.manual_seed(0)
    model, make_inputs = build(*args)
    model = model.eval()
    inputs = make_inputs(torch.Generator().manual_seed(1))
    if dtype is None:
        return model, inputs
    floating = {
        key: value.to(dtype) for key, value in inputs.items() if torch.is_tensor(value) and value.is_floating_point()
    }
    return model.to(dtype), {**inputs, **floating}


def _dpm_solver_linear_betas():
    """DPM-Solver++ over DDPM's linear betas, as PixArt ships and as DiT's documentation swaps in."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        beta_start=0.0001, beta_end=0.02, beta_schedule="linear", num_train_timesteps=1000, prediction_type="epsilon"
    )


def _tiny_t5(vocab_size: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=vocab_size, d_model=TEXT_DIM, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    return T5EncoderModel(config).eval()


def tiny_pixart_sigma_pipeline():
    """PixArt-Sigma as it ships (T5 text encoder, DPM-Solver with linear betas, a learnt-sigma transformer, an
    8x VAE, resolution binning), at its smallest bin: 256x256 images, 32x32 latents. The tokenizer is the tests'
    tiny CLIP one: the pipeline only needs ids and a mask."""
    from diffusers import PixArtSigmaPipeline
    from tiny_models import tiny_tokenizer, tiny_vae

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    transformer, _ = tiny_pixart(sample_size=32)  # PixArt-Sigma bins resolutions from 32 latents up
    scheduler = _dpm_solver_linear_betas()
    return PixArtSigmaPipeline(
        tokenizer=tokenizer,
        text_encoder=_tiny_t5(len(tokenizer)),
        vae=tiny_vae(levels=4),
        transformer=transformer.eval(),
        scheduler=scheduler,
    )


def tiny_pixart_alpha_pipeline():
    """PixArt-alpha 1024 as it ships: its 128-latent transformer takes resolution and aspect-ratio conditions
    (`use_additional_conditions`), T5, DPM-Solver, 1024 resolution binning; tiny widths, 1024x1024 images."""
    from diffusers import PixArtAlphaPipeline
    from tiny_models import tiny_tokenizer, tiny_vae

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    transformer = PixArtTransformer2DModel(
        num_attention_heads=3,  # the resolution and aspect-ratio embeddings take a third of the width each
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=3,
        cross_attention_dim=24,
        sample_size=128,  # the 1024 model: the pipeline passes resolution conditions at this size
        patch_size=2,
        caption_channels=TEXT_DIM,
        norm_type="ada_norm_single",
    )
    assert transformer.use_additional_conditions
    scheduler = _dpm_solver_linear_betas()
    return PixArtAlphaPipeline(
        tokenizer=tokenizer,
        text_encoder=_tiny_t5(len(tokenizer)),
        vae=tiny_vae(levels=4),
        transformer=transformer.eval(),
        scheduler=scheduler,
    )


def tiny_flux_pipeline():
    """FLUX.1-dev as it ships (CLIP + T5 text encoders, flow-matching Euler with dynamic shifting, guidance
    embedding, packed 2x2 latents), shrunk to 16x16 images."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from tiny_models import tiny_clip_text_config, tiny_tokenizer, tiny_vae
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    clip = CLIPTextModel(tiny_clip_text_config(tokenizer, 24, num_hidden_layers=1, projection_dim=8)).eval()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=2,
        num_single_layers=3,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        pooled_projection_dim=24,
        guidance_embeds=True,
        axes_dims_rope=(2, 2, 4),
    ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipeline = FluxPipeline(
        scheduler=scheduler,
        vae=tiny_vae(scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=clip,
        tokenizer=tokenizer,
        text_encoder_2=_tiny_t5(len(tokenizer)),
        tokenizer_2=tiny_tokenizer(),
        transformer=transformer,
    )
    pipeline.default_sample_size = 8  # 16x16 images: 8x8 latents, 4x4 packed tokens
    return pipeline


def tiny_sd3_pipeline():
    """Stable Diffusion 3 as it ships (two CLIP encoders with projections, T5 left out as the pipeline allows,
    flow-matching Euler with shift 3, joint blocks, the last one text-dropping), at 16x16 images."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    from tiny_models import tiny_clip_text_config, tiny_tokenizer, tiny_vae
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()

    def clip():
        return CLIPTextModelWithProjection(
            tiny_clip_text_config(tokenizer, 8, intermediate_size=16, projection_dim=4)
        ).eval()

    transformer, _ = tiny_sd3(num_layers=4, dual_attention_layers=())
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_vae(scaling_factor=1.5305, shift_factor=0.0609),
        text_encoder=clip(),
        tokenizer=tokenizer,
        text_encoder_2=clip(),
        tokenizer_2=tiny_tokenizer(),
        text_encoder_3=None,
        tokenizer_3=None,
    )


def tiny_dit_pipeline():
    """DiT as it ships (class-conditional over 1000 ImageNet classes, label 1000 the null class of guidance,
    learnt variance, an 8x VAE, ImageNet label names), with the DPM-Solver swap its documentation shows, at
    16x16 images."""
    from diffusers import DiTPipeline
    from tiny_models import tiny_vae

    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=4,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=1000,
    )
    scheduler = _dpm_solver_linear_betas()
    labels = {0: "tench, Tinca tinca", 1: "goldfish, Carassius auratus", 207: "golden retriever"}
    return DiTPipeline(transformer=transformer.eval(), vae=tiny_vae(), scheduler=scheduler, id2label=labels)


def tiny_sana_pipeline():
    """Sana 512 as it ships (a Gemma-2 text encoder with its complex human instruction, a 32x deep-compression
    autoencoder, linear-attention blocks on 16x16 latents, DPM-Solver with flow sigmas and flow_shift 3, 512
    resolution binning), at tiny widths. The tokenizer is the tests' tiny CLIP one: the pipeline only needs ids
    and a mask."""
    from diffusers import AutoencoderDC, DPMSolverMultistepScheduler, SanaPipeline
    from tiny_models import tiny_tokenizer
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    gemma = Gemma2Model(
        Gemma2Config(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_DIM,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            attn_implementation="eager",
        )
    ).eval()
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock",) * 5 + ("EfficientViTBlock",),
        decoder_block_types=("ResBlock",) * 5 + ("EfficientViTBlock",),
        encoder_block_out_channels=(4, 4, 4, 8, 8, 8),
        decoder_block_out_channels=(4, 4, 4, 8, 8, 8),
        encoder_qkv_multiscales=((),) * 5 + ((5,),),
        decoder_qkv_multiscales=((),) * 5 + ((5,),),
        encoder_layers_per_block=(1,) * 6,
        decoder_layers_per_block=(1,) * 6,
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    ).eval()
    transformer, _ = tiny_sana(sample_size=16)
    scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")
    pipeline = SanaPipeline(
        tokenizer=tokenizer, text_encoder=gemma, vae=vae, transformer=transformer.eval(), scheduler=scheduler
    )
    return pipeline
