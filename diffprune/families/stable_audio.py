"""Stable Audio (StableAudioDiTModel, Stable Audio Open): text-to-audio, one stack of blocks over one stream, the
global token (seconds start/end plus the timestep embedding) prepended to the audio latent frames. Each block
is pre-norm self-attention (partial rotary embeddings), cross-attention to T5 states (grouped-query), and a SwiGLU
feed-forward, each added to the residual with no norm after it; a depth cut is the stock class with fewer blocks.
Nothing is laid out per block (every block gets the same rotary embedding, text states and global token through
the stream), so a depth cut needs no edit beyond the count.

The pipeline encodes prompts with T5 and its projection model (T5 states, then the seconds start/end tokens,
as cross-attention states; the seconds as the global token), samples with CosineDPMSolverMultistepScheduler
(EDM sigmas, v-prediction) and hands the transformer the preconditioned latents x / sqrt(sigma^2 + sigma_data^2)
and timestep atan(sigma) * 2 / pi, the training noise's convention too (TrainingNoise, v-diffusion); its
classifier-free guidance doubles the batch, the unconditional half with zeroed text and seconds states.
"""

from __future__ import annotations

import torch
from diffusers import StableAudioDiTModel
from diffusers.models.embeddings import get_1d_rotary_pos_embed

from diffprune.families.registry import DEFAULT_TEXT_LENGTH, Family, Stack, call_defaults, register

SECONDS_TOKENS = 2  # the projection model's seconds start and end tokens, after the text states


def rotary_embedding(model, frames: int):
    """(cos, sin) over [global token; frames], as StableAudioPipeline makes them (half the head dim rotates)."""
    return get_1d_rotary_pos_embed(
        model.config.attention_head_dim // 2, frames + 1, use_real=True, repeat_interleave_real=False
    )


def audio_span(pipeline) -> tuple[float, float]:
    """(start, end) in seconds that the pipeline's call conditions on by default: 0 to the longest clip the model
    makes (its sample_size latent frames)."""
    defaults = call_defaults(pipeline, ("audio_start_in_s", "audio_end_in_s"))
    start = defaults.get("audio_start_in_s") or 0.0
    end = defaults.get("audio_end_in_s")
    if end is None:
        end = pipeline.transformer.config.sample_size * pipeline.vae.hop_length / pipeline.vae.config.sampling_rate
    return float(start), float(end)


@register(StableAudioDiTModel)
class StableAudio(Family):
    name = "stable-audio"
    task = "text-to-audio"  # a tokenizer and text encoder but no vocoder: the components alone would say image
    stacks = (Stack("transformer_blocks", "num_layers"),)

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        frames = latent_size or config.sample_size
        tokens = (text_length or DEFAULT_TEXT_LENGTH) + SECONDS_TOKENS
        cos, sin = rotary_embedding(model, frames)
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, frames, generator=generator),
            "timestep": torch.full((batch_size,), 0.5),
            "encoder_hidden_states": torch.randn(
                batch_size, tokens, config.cross_attention_input_dim, generator=generator
            ),
            "global_hidden_states": torch.randn(batch_size, 1, config.global_states_input_dim, generator=generator),
            # One tensor [2, tokens, dim]: the attention processor unpacks it as it unpacks the pipeline's tuple.
            "rotary_embedding": torch.stack([cos, sin]),
        }

    def encode(self, pipeline, prompts, device):
        """Cross-attention states [T5 states (masked); seconds start; seconds end] and the global states [seconds
        start, seconds end], for the call's default span, as StableAudioPipeline's call builds them unguided."""
        text = pipeline.encode_prompt(prompts, device, do_classifier_free_guidance=False)
        start, end = audio_span(pipeline)
        seconds_start, seconds_end = pipeline.encode_duration(start, end, device, False, len(prompts))
        return {
            "encoder_hidden_states": torch.cat([text, seconds_start, seconds_end], dim=1),
            "global_hidden_states": torch.cat([seconds_start, seconds_end], dim=2),
        }

    def encode_negative(self, pipeline, device):
        """With no negative prompt the pipeline's unconditional half has all cross-attention states (text and
        seconds) zeroed and the same global (seconds) states."""
        states = self.encode(pipeline, [""], device)
        return {**states, "encoder_hidden_states": torch.zeros_like(states["encoder_hidden_states"])}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        """`noisy` is the preconditioned input and `timesteps` atan(sigma) * 2 / pi, both as the pipeline passes
        them (TrainingNoise makes both so); the rotary embedding is over the latents' own length."""
        rotary = rotary_embedding(pipeline.transformer, noisy.shape[-1])  # on the CPU: attention moves it
        return model(noisy, timesteps, rotary_embedding=rotary, return_dict=False, **conditioning)[0]
