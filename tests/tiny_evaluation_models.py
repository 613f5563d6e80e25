"""Tiny random models that evaluation tests need beyond tests/tiny_models.py: audio pipelines and the CLIP /
CLAP scorers, all built offline (vocabularies in memory) and small enough for a CPU test."""

from __future__ import annotations

import torch
from tiny_models import audio_diffusion_unet, audioldm_unet, tiny_tokenizer

LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def tiny_roberta_tokenizer():
    """Byte-level BPE in RoBERTa's format ('\u0120' marks a leading space); CLAP and AudioLDM use RoBERTa's."""
    from transformers import RobertaTokenizer

    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "\u0120"] + LETTERS + ["\u0120" + letter for letter in LETTERS]
    return RobertaTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[], model_max_length=16)


def tiny_audio_diffusion_pipeline():
    from diffusers import AudioDiffusionPipeline, DDPMScheduler, Mel

    mel = Mel(x_res=24, y_res=16, sample_rate=8000, n_fft=256, hop_length=64)
    return AudioDiffusionPipeline(
        vqvae=None, unet=audio_diffusion_unet(), mel=mel, scheduler=DDPMScheduler(num_train_timesteps=1000)
    )  # as teticio/audio-diffusion-256


def tiny_audioldm_pipeline():
    from diffusers import AudioLDMPipeline, AutoencoderKL
    from transformers import ClapTextConfig, ClapTextModelWithProjection, SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    tokenizer = tiny_roberta_tokenizer()
    text_encoder = ClapTextModelWithProjection(
        ClapTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=20,
            projection_dim=16,
        )
    ).eval()
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=1,
        out_channels=1,
        latent_channels=4,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    ).eval()
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=8,
            sampling_rate=16000,
            upsample_initial_channel=16,
            upsample_rates=[2, 2],
            upsample_kernel_sizes=[4, 4],
            resblock_kernel_sizes=[3, 7],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
            normalize_before=False,
        )
    ).eval()
    return AudioLDMPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=audioldm_unet(),
        scheduler=audioldm_scheduler(),
        vocoder=vocoder,
    )


def audioldm_scheduler():
    """The scheduler config cvssp/audioldm ships."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.0015,
        beta_end=0.0195,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def tiny_clip():
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=1,
        max_position_embeddings=12,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    vision = dict(
        hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1, image_size=16, patch_size=4
    )
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    return model, CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_clap():
    """A random ClapModel: 16 mel bins at 8 kHz, 1 s clips (HTSAT needs frames <= spec_size * 2)."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    torch.manual_seed(0)
    tokenizer = tiny_roberta_tokenizer()
    config = ClapConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=20,
            projection_dim=8,
        ),
        audio_config=dict(
            window_size=4,
            num_mel_bins=16,
            spec_size=32,
            patch_size=2,
            patch_stride=2,
            hidden_size=16,
            patch_embeds_hidden_size=8,
            projection_dim=8,
            depths=[1, 1],
            num_attention_heads=[2, 2],
            num_hidden_layers=2,
        ),
        projection_dim=8,
    )
    extractor = ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=8000,
        hop_length=160,
        max_length_s=1,
        fft_window_size=256,
        frequency_max=4000,
        truncation="rand_trunc",
    )
    return ClapModel(config).eval(), ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer)
