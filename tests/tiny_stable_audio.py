"""A tiny Stable Audio Open (StableAudioPipeline) built offline as stabilityai/stable-audio-open-1.0 ships: a T5
encoder and its (Unigram) tokenizer, the projection model (text projection = identity, as at 768 = 768; seconds
start/end conditioners), a StableAudioDiTModel with grouped-query cross-attention and partial rotary embeddings, a
stereo AutoencoderOobleck at 44.1 kHz, and CosineDPMSolverMultistepScheduler with the hub model's config (the
class's documented defaults, which are Stable Audio Open's: sigma 0.3..500, sigma_data 1, v-prediction)."""

from __future__ import annotations

import torch
from diffusers import StableAudioDiTModel

TEXT_DIM = 16  # T5's width; the projection model keeps it (the hub model: 768 -> 768, an identity)
TEXT_TOKENS = 8  # the tokenizer's model_max_length (the hub model's: 128)
LATENT_CHANNELS = 4  # the hub model: 64
LATENT_FRAMES = 16  # transformer sample_size (the hub model: 1024 latent frames, 47.55 s)
BATCH = 2


def tiny_stable_audio_dit(num_layers: int = 4, sample_size: int = LATENT_FRAMES) -> StableAudioDiTModel:
    return StableAudioDiTModel(
        sample_size=sample_size,
        in_channels=LATENT_CHANNELS,
        num_layers=num_layers,
        attention_head_dim=8,
        num_attention_heads=2,
        num_key_value_attention_heads=1,  # grouped-query cross-attention, as the hub model (24 / 12)
        out_channels=LATENT_CHANNELS,
        cross_attention_dim=TEXT_DIM,
        time_proj_dim=16,
        global_states_input_dim=2 * TEXT_DIM,  # seconds start and end, concatenated
        cross_attention_input_dim=TEXT_DIM,
    )


def rotary_embedding(model: StableAudioDiTModel, frames: int) -> torch.Tensor:
    """(cos, sin) stacked into one tensor [2, tokens, dim]: the processor unpacks it as it unpacks the pipeline's
    tuple, and one tensor can be saved and cast like any other input."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    cos, sin = get_1d_rotary_pos_embed(
        model.config.attention_head_dim // 2, frames + 1, use_real=True, repeat_interleave_real=False
    )
    return torch.stack([cos, sin])


def tiny_stable_audio():
    """The denoiser and the inputs StableAudioPipeline hands it: latents [batch, channels, frames], the sampler's
    timestep atan(sigma) * 2 / pi, T5 states plus the two seconds tokens, the seconds as the global token, and the
    rotary embedding over [global token; frames]."""
    model = tiny_stable_audio_dit()

    def inputs(generator):
        return dict(
            hidden_states=torch.randn(BATCH, LATENT_CHANNELS, LATENT_FRAMES, generator=generator),
            timestep=torch.tensor([0.3, 0.9]),
            encoder_hidden_states=torch.randn(BATCH, TEXT_TOKENS + 2, TEXT_DIM, generator=generator),
            global_hidden_states=torch.randn(BATCH, 1, 2 * TEXT_DIM, generator=generator),
            rotary_embedding=rotary_embedding(model, LATENT_FRAMES),
        )

    return model, inputs


def tiny_t5_tokenizer(model_max_length: int = TEXT_TOKENS):
    """A T5 (Unigram, SentencePiece-style) tokenizer over letters and digits, built in memory."""
    from transformers import T5Tokenizer

    pieces = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(piece, -3.0) for piece in pieces] + [("\u2581" + piece, -2.5) for piece in pieces]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def cosine_dpm_solver():
    """The scheduler config stabilityai/stable-audio-open-1.0 ships (the class's defaults are that model's)."""
    from diffusers import CosineDPMSolverMultistepScheduler

    return CosineDPMSolverMultistepScheduler(
        sigma_min=0.3,
        sigma_max=500.0,
        sigma_data=1.0,
        sigma_schedule="exponential",
        num_train_timesteps=1000,
        solver_order=2,
        prediction_type="v_prediction",
        rho=7.0,
        solver_type="midpoint",
        lower_order_final=True,
        euler_at_final=False,
        final_sigmas_type="zero",
    )


def tiny_stable_audio_pipeline(num_layers: int = 4):
    """Stable Audio Open as it ships, at tiny widths: 16 latent frames of a 4x-downsampling Oobleck VAE, so 64
    stereo samples at 44.1 kHz."""
    from diffusers import AutoencoderOobleck, StableAudioPipeline
    from diffusers.pipelines.stable_audio import StableAudioProjectionModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tokenizer = tiny_t5_tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    ).eval()
    projection = StableAudioProjectionModel(
        text_encoder_dim=TEXT_DIM, conditioning_dim=TEXT_DIM, min_value=0, max_value=512
    ).eval()
    vae = AutoencoderOobleck(
        encoder_hidden_size=2 * LATENT_CHANNELS,  # the encoder returns mean and scale
        downsampling_ratios=[2, 2],
        channel_multiples=[1, 2],
        decoder_channels=8,
        decoder_input_channels=LATENT_CHANNELS,
        audio_channels=2,
        sampling_rate=44100,
    ).eval()
    return StableAudioPipeline(
        vae=vae,
        text_encoder=text_encoder,
        projection_model=projection,
        tokenizer=tokenizer,
        transformer=tiny_stable_audio_dit(num_layers).eval(),
        scheduler=cosine_dpm_solver(),
    )
