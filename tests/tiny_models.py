"""Tiny random models of every UNet family diffprune supports, built offline (4-32 channels, 16x16).

The configs follow the shapes of the real families (SD 1.x/2.x, SDXL, DeepFloyd IF / Kandinsky, DDPM, LDM,
audio diffusion, AudioLDM, AudioLDM2) at a size that runs in milliseconds on a CPU.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel, UNet2DModel
from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel


def _seeded(build):
    def wrapper():
        torch.manual_seed(0)
        return build().eval()

    wrapper.__name__ = build.__name__
    return wrapper


@_seeded
def sd_unet():
    return UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=2,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24,
        attention_head_dim=4,
        norm_num_groups=8,
    )


@_seeded
def sdxl_unet():
    return UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=2,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=32,
        norm_num_groups=8,
    )


@_seeded
def simple_cross_attention_unet():
    """DeepFloyd IF / Kandinsky style: simple cross-attention blocks, resnet down/upsampling, projected text."""
    return UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=3,
        out_channels=3,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        cross_attention_dim=32,
        attention_head_dim=8,
        encoder_hid_dim=20,
        encoder_hid_dim_type="text_proj",
        addition_embed_type="text",
        addition_embed_type_num_heads=2,
        norm_num_groups=8,
        resnet_time_scale_shift="scale_shift",
    )


@_seeded
def ddpm_unet():
    return UNet2DModel(
        block_out_channels=(16, 32),
        layers_per_block=2,
        sample_size=16,
        in_channels=1,
        out_channels=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=8,
    )


@_seeded
def ldm_unet():
    return UNet2DModel(
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        sample_size=8,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=8,
    )


@_seeded
def audio_diffusion_unet():
    """Audio diffusion: one-channel, non-square mel spectrograms."""
    return UNet2DModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=(16, 24),
        in_channels=1,
        out_channels=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=8,
    )


@_seeded
def audioldm_unet():
    """AudioLDM: text embedding enters as a projected class embedding; attention blocks attend to themselves."""
    return UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(16, 32),
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=16,
        class_embeddings_concat=True,
        norm_num_groups=8,
        attention_head_dim=4,
    )


@_seeded
def audioldm2_unet():
    return AudioLDM2UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 24], [None, 16, 24]),
        norm_num_groups=8,
        attention_head_dim=4,
    )


FAMILIES = {
    "sd": sd_unet,
    "sdxl": sdxl_unet,
    "simple_cross_attention": simple_cross_attention_unet,
    "ddpm": ddpm_unet,
    "ldm": ldm_unet,
    "audio_diffusion": audio_diffusion_unet,
    "audioldm": audioldm_unet,
    "audioldm2": audioldm2_unet,
}


def tiny_tokenizer():
    """A CLIP tokenizer built from an in-memory vocabulary (transformers 5 needs vocab=dict, merges=list)."""
    from transformers import CLIPTokenizer

    symbols = list("abcdefghijklmnopqrstuvwxyz0123456789")
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"] + symbols + [s + "</w>" for s in symbols]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=12)


# Scheduler configs as real pipelines ship them (betas, spacing, offsets, prediction type). None of the
# latent ones says clip_sample, as in the real configs: a sampler that assumes DDIM's default would clip.
SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
LATENT_SCHEDULERS = {
    "pndm": ("PNDMScheduler", dict(SD_BETAS, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)),  # SD 1.5
    "dpm-solver": ("DPMSolverMultistepScheduler", dict(SD_BETAS, steps_offset=1)),  # digits-t2i, many fine-tunes
    "euler": ("EulerDiscreteScheduler", dict(SD_BETAS, steps_offset=1, timestep_spacing="leading")),  # SDXL
    "unipc": ("UniPCMultistepScheduler", dict(SD_BETAS)),
    "ddim-v": (
        "DDIMScheduler",
        dict(SD_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction"),
    ),  # SD 2.1 768-v
    "dpm-solver-v": ("DPMSolverMultistepScheduler", dict(SD_BETAS, steps_offset=1, prediction_type="v_prediction")),
}
PIXEL_SCHEDULERS = {
    "ddpm": ("DDPMScheduler", dict(num_train_timesteps=1000)),  # google/ddpm-*: linear betas, clip_sample=True
    "ddim": ("DDIMScheduler", dict(num_train_timesteps=1000)),  # DDIMPipeline on the same model
    "ddpm-v": ("DDPMScheduler", dict(num_train_timesteps=1000, prediction_type="v_prediction")),
}


def tiny_vae(levels: int = 2, **config):
    """A tiny AutoencoderKL (random weights) whose latents are 2 ** (levels - 1) times smaller than the images."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8,) * (levels - 1) + (16,),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        sample_size=32,
        **config,
    ).eval()


def tiny_clip_text_config(tokenizer, hidden_size: int, **overrides):
    """A CLIPTextConfig for `tiny_tokenizer`'s vocabulary and 12-token prompts."""
    from transformers import CLIPTextConfig

    config = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        max_position_embeddings=12,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextConfig(**{**config, **overrides})


def make_scheduler(name: str):
    import diffusers

    class_name, config = {**LATENT_SCHEDULERS, **PIXEL_SCHEDULERS}[name]
    return getattr(diffusers, class_name)(**config)


def tiny_sd_pipeline(scheduler: str = "dpm-solver"):
    """A complete, tiny Stable Diffusion pipeline (random weights) that generates in a second on a CPU."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(tiny_clip_text_config(tokenizer, hidden_size=24)).eval()
    vae = tiny_vae()
    return StableDiffusionPipeline(
        unet=sd_unet(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=make_scheduler(scheduler),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_ddpm_pipeline(scheduler: str = "ddpm"):
    """DDPMPipeline as google/ddpm-* ships it (DDIMPipeline for scheduler="ddim")."""
    from diffusers import DDIMPipeline, DDPMPipeline

    pipeline_class = DDIMPipeline if scheduler == "ddim" else DDPMPipeline
    return pipeline_class(unet=ddpm_unet(), scheduler=make_scheduler(scheduler))


def tiny_sdxl_pipeline(scheduler: str = "euler"):
    """A complete, tiny SDXL pipeline (random weights) around `sdxl_unet`: two CLIP text encoders whose hidden
    states concatenate to its cross-attention width (16 + 16), the second's projection (32) as the pooled
    embedding, so text_embeds (32) + six time ids x 8 fill its 80-wide added embedding."""
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(tiny_clip_text_config(tokenizer, hidden_size=16)).eval()
    text_encoder_2 = CLIPTextModelWithProjection(tiny_clip_text_config(tokenizer, 16, projection_dim=32)).eval()
    vae = tiny_vae()
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tiny_tokenizer(),
        unet=sdxl_unet(),
        scheduler=make_scheduler(scheduler),
        add_watermarker=False,
    )
