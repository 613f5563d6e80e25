"""ACE-Step (AceStepTransformer1DModel), a music diffusion transformer: one stack of blocks over the latent audio
frames (`layers`, `num_hidden_layers`) with self-attention, cross-attention to the condition encoder's states and
a feed-forward; every block reads the shared timestep projection and rotary positions.

Trap: blocks alternate sliding-window and full self-attention by position (`layer_types`, built as
sliding/full/sliding/... when the config leaves it None), and the model hands block i the mask of
`layer_types[i]` from a list it keeps beside the stack. A naive depth cut gives every block after the removed one
its neighbour's attention pattern. A depth cut here drops the removed blocks' entries and writes the kept blocks'
types into the config, so the stock class rebuilds each block with its own pattern.

The pipeline passes the noisy latents [batch, frames, 64] with the context latents (source latents and chunk
masks) beside them, the condition encoder's states, t and r in [0, 1], and doubles the batch for guidance.
"""

from __future__ import annotations

import torch
from diffusers import AceStepTransformer1DModel

from diffprune.families.registry import LOSSES, Family, Stack, register

DEFAULT_FRAMES = 750  # 30 s at 25 latent frames per second
CONDITION_LENGTH = 256
NOT_DECLARED = "its pipeline call is not declared yet; use ld-pruner, magnitude or random"


@register(AceStepTransformer1DModel)
class AceStep(Family):
    name = "ace-step"
    task = "text-to-audio"
    stacks = (Stack("layers", "num_hidden_layers"),)
    unsupported = {LOSSES: NOT_DECLARED}

    def fixed_blocks(self, model):
        # The model reads the first block's self-attention processor to choose its mask, so it stays.
        return {"layers.0.self_attn"}

    def edit_depth_cut(self, cut, removed):
        gone = set(removed.get("layers", []))
        kept = [kind for index, kind in enumerate(cut.layer_types) if index not in gone]
        cut.layer_types = kept
        cut.register_to_config(layer_types=kept)

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        frames = latent_size or DEFAULT_FRAMES
        audio = config.audio_acoustic_hidden_dim
        return {
            "hidden_states": torch.randn(batch_size, frames, audio, generator=generator),
            "timestep": torch.full((batch_size,), 0.5),
            "timestep_r": torch.full((batch_size,), 0.5),
            "encoder_hidden_states": torch.randn(
                batch_size,
                text_length or CONDITION_LENGTH,
                config.encoder_hidden_size or config.hidden_size,
                generator=generator,
            ),
            "context_latents": torch.randn(batch_size, frames, config.in_channels - audio, generator=generator),
        }
