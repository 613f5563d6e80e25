"""PixArt-alpha and PixArt-Sigma (PixArtTransformer2DModel): one stack of blocks with self-attention,
cross-attention to T5 states and a feed-forward; a depth cut is the stock class with fewer blocks.

The pipeline encodes prompts with T5 (`encode_prompt`, its call's defaults), passes an integer timestep and,
where the model takes them (PixArt-alpha 1024: `use_additional_conditions`), resolution and aspect-ratio
conditions; a learnt-variance model returns twice the channels and the pipeline keeps the first half.
"""

from __future__ import annotations

import torch
from diffusers import PixArtTransformer2DModel

from diffprune.families.registry import DEFAULT_TEXT_LENGTH, Family, Stack, call_defaults, register

T5_CALL_DEFAULTS = ("max_sequence_length", "complex_human_instruction", "clean_caption")


def encode_with_mask(pipeline, prompts, device) -> dict[str, torch.Tensor]:
    """T5/Gemma states and their attention mask, as PixArt's and Sana's calls encode a prompt."""
    defaults = call_defaults(pipeline, T5_CALL_DEFAULTS)
    embeds, mask, _, _ = pipeline.encode_prompt(prompts, do_classifier_free_guidance=False, device=device, **defaults)
    return {"encoder_hidden_states": embeds, "encoder_attention_mask": mask}


def encode_negative_with_mask(pipeline, device) -> dict[str, torch.Tensor]:
    """The unconditional states and mask of PixArt's and Sana's guidance, as their calls encode the default
    empty negative prompt (Sana's without the complex human instruction its prompts get)."""
    defaults = call_defaults(pipeline, T5_CALL_DEFAULTS)
    _, _, embeds, mask = pipeline.encode_prompt([""], do_classifier_free_guidance=True, device=device, **defaults)
    return {"encoder_hidden_states": embeds, "encoder_attention_mask": mask}


def first_half_if_learnt_variance(prediction: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """A learnt-variance model returns [noise, variance] channels; pipelines keep the noise half."""
    return prediction.chunk(2, dim=1)[0] if prediction.shape[1] == 2 * noisy.shape[1] else prediction


@register(PixArtTransformer2DModel)
class PixArt(Family):
    name = "pixart"
    stacks = (Stack("transformer_blocks", "num_layers"),)
    pads_text_to_max_sequence_length = True

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or config.sample_size
        extra = None
        # None in the config means "decided by sample_size" (128, PixArt-alpha 1024); the model knows.
        if getattr(model, "use_additional_conditions", config.get("use_additional_conditions")):
            extra = torch.tensor([[size * 8.0, size * 8.0]] * batch_size)
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "timestep": torch.full((batch_size,), 500, dtype=torch.long),
            "encoder_hidden_states": torch.randn(
                batch_size, text_length or DEFAULT_TEXT_LENGTH, config.caption_channels, generator=generator
            ),
            "added_cond_kwargs": {
                "resolution": extra,
                "aspect_ratio": None if extra is None else torch.ones(batch_size, 1),
            },
        }

    def encode(self, pipeline, prompts, device):
        return encode_with_mask(pipeline, prompts, device)

    def encode_negative(self, pipeline, device):
        return encode_negative_with_mask(pipeline, device)

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        # Resolution conditions only where the model takes them (PixArt-alpha 1024), as its pipeline does.
        added = {"resolution": None, "aspect_ratio": None}
        if getattr(pipeline.transformer, "use_additional_conditions", False):
            factor = pipeline.vae_scale_factor
            height, width = noisy.shape[-2] * factor, noisy.shape[-1] * factor
            added = {
                "resolution": noisy.new_tensor([[height, width]]).repeat(noisy.shape[0], 1),
                "aspect_ratio": noisy.new_tensor([[height / width]]).repeat(noisy.shape[0], 1),
            }
        prediction = model(noisy, timestep=timesteps, added_cond_kwargs=added, **conditioning).sample
        return first_half_if_learnt_variance(prediction, noisy)
