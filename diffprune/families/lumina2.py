"""Lumina-Image 2.0 (Lumina2Transformer2DModel): two refiner stacks, then the main stack over the joined tokens.

  * `context_refiner` (text tokens, unmodulated) and `noise_refiner` (image tokens, modulated by the timestep)
    each have `num_refiner_layers` blocks: ONE config key counts both, so no stock config can drop a block of
    one without the other. Their blocks are cut in place (REPLACE: a bypass in the Pruned* class), which is exact
    and still lets a criterion weigh them; a cut that keeps to the main stack stays the stock class.
  * `layers` (`num_layers`): the joint blocks over [text, image] tokens; a depth cut is the stock class with
    fewer of them.
Every block maps its tokens to tokens of the same shape (one stream), and nothing outside a block reads it by
position.

Trap for gates: a block adds `tanh(gate) * norm2(attn(x))` and `tanh(gate) * ffn_norm2(feed_forward(x))`, and
RMSNorm is scale invariant (`norm(g f) = norm(f)` for g > 0), so a gate on `attn` or `feed_forward` themselves
would change nothing until it reaches 0 and give gradient criteria no signal. Their gates sit after those norms
(`branch_gates`); removing the branch feeds zeros into the norm, which returns zeros: the gate at 0 exactly.

The pipeline encodes prompts with Gemma-2 behind its system prompt (`encode_prompt`, padded to the call's
`max_sequence_length`, with the attention mask), and its time runs the other way: it passes 1 - sigma (0 is
noise, 1 the image) and the model predicts image - noise, which the pipeline negates before the scheduler step.
Classifier-free guidance is two calls per step (`cfg_normalization`, `cfg_trunc_ratio` act on their results).
"""

from __future__ import annotations

import torch
from diffusers import Lumina2Transformer2DModel

from diffprune.families.registry import REPLACE, Family, Stack, call_defaults, register

TEXT_LENGTH = 256  # Lumina2Pipeline's max_sequence_length


@register(Lumina2Transformer2DModel)
class Lumina2(Family):
    name = "lumina2"
    stacks = (
        Stack("context_refiner", None, kind="refiner_block", cut=REPLACE),
        Stack("noise_refiner", None, kind="refiner_block", cut=REPLACE),
        Stack("layers", "num_layers"),
    )
    branch_gates = {"attn": "norm2", "feed_forward": "ffn_norm2"}
    guidance = "separate"
    pads_text_to_max_sequence_length = True

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or config.sample_size
        # The pipeline pads prompts to its call's max_sequence_length (256) and masks the padding: at most that
        # many text tokens, whatever Gemma's tokenizer allows.
        length = min(text_length or TEXT_LENGTH, TEXT_LENGTH)
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "timestep": torch.full((batch_size,), 0.5),
            "encoder_hidden_states": torch.randn(batch_size, length, config.cap_feat_dim, generator=generator),
            "encoder_attention_mask": torch.ones(batch_size, length, dtype=torch.long),
        }

    def encode(self, pipeline, prompts, device):
        defaults = call_defaults(pipeline, ("max_sequence_length", "system_prompt"))
        embeds, mask, _, _ = pipeline.encode_prompt(
            prompts, do_classifier_free_guidance=False, device=device, **defaults
        )
        return {"encoder_hidden_states": embeds, "encoder_attention_mask": mask}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        """Velocity noise - image, as the training noise's target, from a model that predicts image - noise at
        Lumina's time 1 - sigma."""
        sigma = timesteps / pipeline.scheduler.config.num_train_timesteps
        prediction = model(hidden_states=noisy, timestep=1 - sigma, **conditioning).sample
        return -prediction
