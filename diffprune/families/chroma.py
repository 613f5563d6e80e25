"""Chroma (ChromaTransformer2DModel): FLUX.1-schnell's double-stream (`transformer_blocks`) and single-stream
(`single_transformer_blocks`) stacks with the per-block modulation replaced by one approximator
(`distilled_guidance_layer`) that produces every block's modulation at once.

The trap: the approximator's input has one row per modulation slot, `time_text_embed.mod_proj`, a sinusoidal
embedding of the slot's index computed at init (not saved) for 3 * num_single_layers + 12 * num_layers + 2
slots, and each block reads its slots by position: single block j slots 3j..3j+2, double block j image slots
3S + 6j.. and text slots 3S + 6L + 6j.. (S, L: the stacks' lengths), the output norm the last two. Deleting a
block and lowering a count moves the slots of every later block, of all double blocks (their offsets count the
single blocks) and of the output norm: the stock class then loads and runs, silently wrong. No stock config can
keep the slots (they are a function of the counts), so blocks of both stacks are replaced in place by a bypass
(REPLACE: the Pruned* class keeps both counts, so every kept block reads its own slots).

A double block returns (text, image); a single block takes the concatenated tokens and returns one tensor. The
pipeline encodes prompts with T5 and its mask (all but the first padding token masked, extended over the image
tokens), packs 2x2 latent patches, passes timestep = sigma (the model scales it by 1000), and runs
classifier-free guidance as a second call with the negative prompt.
"""

from __future__ import annotations

import torch
from diffusers import ChromaTransformer2DModel

from diffprune.families.flux import DEFAULT_LATENT, grid_ids, square_grid
from diffprune.families.registry import REPLACE, TEXT_IMAGE, Family, Stack, call_defaults, register

DEFAULT_TEXT_LENGTH = 512  # ChromaPipeline pads T5 prompts to its call's max_sequence_length


@register(ChromaTransformer2DModel)
class Chroma(Family):
    name = "chroma"
    stacks = (
        Stack("transformer_blocks", "num_layers", streams=TEXT_IMAGE, cut=REPLACE),
        Stack("single_transformer_blocks", "num_single_layers", kind="single_transformer_block", cut=REPLACE),
    )
    context_branches = ("ff_context",)
    guidance = "separate"

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        length = text_length or DEFAULT_TEXT_LENGTH
        side = (latent_size or DEFAULT_LATENT) // 2
        return {
            "hidden_states": torch.randn(batch_size, side * side, config.in_channels, generator=generator),
            "encoder_hidden_states": torch.randn(batch_size, length, config.joint_attention_dim, generator=generator),
            "timestep": torch.full((batch_size,), 0.5),
            "img_ids": grid_ids(side),
            "txt_ids": torch.zeros(length, 3),
            "attention_mask": torch.ones(batch_size, length + side * side),
        }

    def encode(self, pipeline, prompts, device):
        defaults = call_defaults(pipeline, ("max_sequence_length",))
        embeds, _, mask, *_ = pipeline.encode_prompt(
            prompts, None, device=device, do_classifier_free_guidance=False, **defaults
        )
        return {"encoder_hidden_states": embeds, "attention_mask": mask}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        """`noisy` in the packed layout [batch, tokens, 4 x channels], square as at the pipeline's default size."""
        grid = square_grid(noisy, "Chroma")
        text = conditioning["encoder_hidden_states"]
        image_ids = pipeline._prepare_latent_image_ids(noisy.shape[0], grid, grid, noisy.device, noisy.dtype)
        text_ids = torch.zeros(text.shape[1], 3, device=noisy.device, dtype=text.dtype)
        # The text mask extended over the image tokens, as the pipeline's call does.
        mask = pipeline._prepare_attention_mask(
            noisy.shape[0], noisy.shape[1], noisy.dtype, conditioning["attention_mask"]
        )
        return model(
            hidden_states=noisy,
            timestep=timesteps / 1000,  # ChromaPipeline passes sigma; the model scales it back up
            encoder_hidden_states=text,
            txt_ids=text_ids,
            img_ids=image_ids,
            attention_mask=mask,
            joint_attention_kwargs={},
            return_dict=False,
        )[0]
