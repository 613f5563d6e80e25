"""Qwen-Image (QwenImageTransformer2DModel): one stack of MM-DiT blocks over an image and a text stream, each
block with its own modulation (`img_mod`, `txt_mod`) from the shared timestep embedding; a depth cut is the
stock class with fewer blocks (Qwen-Image was cut 60 -> 40/30 layers this way: PPCL, Amber-Image). A block
returns (text, image); the text stream's feed-forward is `txt_mlp`. Edit models built with `zero_cond_t` run
the timestep batch twice inside the blocks (the second half at t = 0 for reference-image tokens); a block's
streams keep the image batch, so gates and bypasses are unchanged.

The pipeline encodes prompts with Qwen2.5-VL (its chat template; the system prefix dropped; each batch padded to
its longest prompt, with a mask only where some prompt is shorter), packs 2x2 latent patches into tokens, passes
timestep = sigma (the model scales it by 1000) and `img_shapes`, and runs true classifier-free guidance as a
second call with the negative prompt (`true_cfg_scale`, only when a negative prompt is given).

Not saved state, so a cut cannot edit it: ControlNet residuals (`controlnet_block_samples`) are spread over the
blocks by `ceil(len(blocks) / len(samples))`, so a QwenImage ControlNet made for the full model adds its residuals
at other depths of a cut one.
"""

from __future__ import annotations

import torch
from diffusers import QwenImageTransformer2DModel

from diffprune.families.flux import square_grid
from diffprune.families.registry import DEFAULT_TEXT_LENGTH, TEXT_IMAGE, Family, Stack, call_defaults, register

DEFAULT_LATENT = 128  # Qwen-Image at 1024x1024 (default_sample_size 128): 128x128 latents, 64x64 packed tokens
# What Qwen-Image's model card passes for true classifier-free guidance when there is nothing to steer away from.
NEGATIVE_PROMPT = " "


def image_shapes(batch_size: int, grid: int) -> list[list[tuple[int, int, int]]]:
    """`img_shapes` as QwenImagePipeline passes them: one (frames, rows, columns) of packed tokens per sample."""
    return [[(1, grid, grid)]] * batch_size


@register(QwenImageTransformer2DModel)
class QwenImage(Family):
    name = "qwenimage"
    stacks = (Stack("transformer_blocks", "num_layers", streams=TEXT_IMAGE),)
    context_branches = ("txt_mlp",)
    guidance = "separate"

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        length = text_length or DEFAULT_TEXT_LENGTH
        side = (latent_size or DEFAULT_LATENT) // 2
        inputs = {
            "hidden_states": torch.randn(batch_size, side * side, config.in_channels, generator=generator),
            "encoder_hidden_states": torch.randn(batch_size, length, config.joint_attention_dim, generator=generator),
            "timestep": torch.full((batch_size,), 0.5),
            "img_shapes": image_shapes(batch_size, side),
        }
        if config.get("use_additional_t_cond"):
            inputs["additional_t_cond"] = torch.zeros(batch_size, dtype=torch.long)
        return inputs

    def guidance_scale(self, pipeline, requested=None):
        """True CFG's scale (`true_cfg_scale`); `guidance_scale` is only for guidance-distilled models."""
        if requested is not None:
            return float(requested)
        return float(call_defaults(pipeline, ("true_cfg_scale",)).get("true_cfg_scale", 1.0))

    def encode_negative(self, pipeline, device):
        """The model card's negative prompt, which `guidance_arguments` gives the guided call."""
        return self.encode(pipeline, [NEGATIVE_PROMPT], device)

    def guidance_arguments(self, pipeline, guidance_scale):
        """True CFG is `true_cfg_scale` with a negative prompt (the call's `guidance_scale` is only for
        guidance-distilled models); the model card's negative prompt where none is given."""
        scale = self.guidance_scale(pipeline, guidance_scale)
        if scale <= 1:
            return {"true_cfg_scale": 1.0}
        return {"true_cfg_scale": float(scale), "negative_prompt": NEGATIVE_PROMPT}

    def encode(self, pipeline, prompts, device):
        """Prompt states padded to the call's `max_sequence_length` with their mask, so that samples encoded
        apart stack; `predict` trims a batch to its longest prompt, as the pipeline's own encoding does."""
        length = call_defaults(pipeline, ("max_sequence_length",)).get("max_sequence_length", 512)
        embeds, mask = pipeline.encode_prompt(prompts, device=device, max_sequence_length=length)
        if mask is None:  # every prompt as long as the longest
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        padding = length - embeds.shape[1]
        return {
            "encoder_hidden_states": torch.nn.functional.pad(embeds, (0, 0, 0, padding)),
            "encoder_hidden_states_mask": torch.nn.functional.pad(mask, (0, padding)),
        }

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        """`noisy` in the packed layout [batch, tokens, 4 x channels], square as at the pipeline's default size."""
        grid = square_grid(noisy, "QwenImage")
        mask = conditioning["encoder_hidden_states_mask"]
        longest = int(mask.sum(dim=1).max())
        embeds, mask = conditioning["encoder_hidden_states"][:, :longest], mask[:, :longest]
        return model(
            hidden_states=noisy,
            timestep=timesteps / 1000,  # QwenImagePipeline passes sigma; the model scales it back up
            guidance=None,  # guidance-distilled Qwen-Image (guidance_embeds) does not run in diffusers 0.42
            encoder_hidden_states_mask=None if bool(mask.all()) else mask,
            encoder_hidden_states=embeds,
            img_shapes=image_shapes(noisy.shape[0], grid),
            attention_kwargs={},
            return_dict=False,
        )[0]
