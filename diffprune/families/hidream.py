"""HiDream-I1 (HiDreamImageTransformer2DModel): double-stream blocks (`double_stream_blocks`, `num_layers`), then
single-stream blocks over the joined tokens (`single_stream_blocks`, `num_single_layers`); a depth cut is the
stock class with fewer blocks. Every block is wrapped (`HiDreamBlock.block`), so its branches live under
`.block`: the joint attention (`attn1`, image and text), the image feed-forward `ff_i` (a mixture of experts),
the text feed-forward `ff_t`; single blocks' `attn1` and `ff_i`.

Per-block state outside the blocks, by position (counted over the double blocks, then the single blocks):
  * block i reads Llama layer `llama_layers[i]` of the prompt through its own text projection
    `caption_projection[i]` (one per block, plus the T5 one, last). A depth cut drops the removed blocks'
    projections (the rest renumber with the blocks) and their `llama_layers` entries (`edit_depth_cut`); a cut
    that only lowers the counts runs, but feeds every later block the text of its predecessor's slot.
  * the last block's projected Llama states also start the text stream of every double-stream block (the model
    takes `encoder_hidden_states[-2]`, the last block's, with T5's): removing that block would change the text
    every double block reads, so it stays (fixed).
Double blocks return (image, text) (IMAGE_TEXT) and the model keeps the text stream's leading tokens (T5 and the
last block's Llama states) after each; single blocks take one stream, the image and text tokens joined with the
block's own Llama states, and the model drops those again after each.

Traps for the losses: the mixture of experts computes its routed experts under torch.no_grad() in eval mode
(`moe_infer`; in every mode with `force_inference_output`), so no gradient reaches them or flows back through
them; while gradients are recorded, predict runs the mixtures through their training path (the same mixture,
differentiable). A model in training mode
(distillation's student) returns its output in a patch layout ([batch, channels, tokens, patch x patch]);
predict puts it back in the latents' layout.

The pipeline encodes prompts with CLIP-L and CLIP-G (pooled), T5 and every hidden layer of Llama-3.1
(`encode_prompt`, [layers, batch, tokens, width]), passes `timesteps` = sigma x 1000, and the model predicts
image - noise, which the pipeline negates; classifier-free guidance doubles the batch.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from diffusers import HiDreamImageTransformer2DModel
from diffusers.models.transformers.transformer_hidream_image import MOEFeedForwardSwiGLU
from torch import nn

from diffprune.families.registry import IMAGE_TEXT, Family, Stack, call_defaults, register

TEXT_LENGTH = 128  # the pipeline pads T5 and Llama prompts to its call's max_sequence_length (128)
LLAMA = "encoder_hidden_states_llama3"  # [layers, batch, ...] in the model's call; batch first in conditioning


@register(HiDreamImageTransformer2DModel)
class HiDream(Family):
    name = "hidream"
    stacks = (
        Stack("double_stream_blocks", "num_layers", streams=IMAGE_TEXT, branch_parent="block"),
        Stack("single_stream_blocks", "num_single_layers", kind="single_transformer_block", branch_parent="block"),
    )
    context_branches = ("ff_t",)

    def fixed_blocks(self, model):
        for stack in reversed(self.stacks):
            count = len(getattr(model, stack.attribute))
            if count:
                return {f"{stack.attribute}.{count - 1}"}
        return set()

    def edit_depth_cut(self, cut, removed):
        double = removed.get("double_stream_blocks", [])
        single = removed.get("single_stream_blocks", [])
        original_double = cut.config.num_layers + len(double)  # the counts are lowered already
        gone = set(double) | {original_double + index for index in single}
        # caption_projection: one per block (in block order), then T5's; the T5 one is never in `gone`.
        cut.caption_projection = nn.ModuleList(p for i, p in enumerate(cut.caption_projection) if i not in gone)
        layers = [layer for i, layer in enumerate(cut.config.llama_layers) if i not in gone]
        cut.register_to_config(llama_layers=layers)

    def example_inputs(self, model, batch_size, text_length, latent_size, generator):
        config = model.config
        size = latent_size or config.max_resolution[0]
        length = TEXT_LENGTH  # the pipeline's tokenizer (CLIP) only makes the pooled embedding; T5 and Llama get 128
        t5_width, llama_width = config.caption_channels
        llama_layers = max(config.llama_layers) + 1
        return {
            "hidden_states": torch.randn(batch_size, config.in_channels, size, size, generator=generator),
            "timesteps": torch.full((batch_size,), 500.0),
            "encoder_hidden_states_t5": torch.randn(batch_size, length, t5_width, generator=generator),
            LLAMA: torch.randn(llama_layers, batch_size, length, llama_width, generator=generator),
            "pooled_embeds": torch.randn(batch_size, config.text_emb_dim, generator=generator),
        }

    def encode(self, pipeline, prompts, device):
        defaults = call_defaults(pipeline, ("max_sequence_length",))
        t5, _, llama, _, pooled, _ = pipeline.encode_prompt(
            prompt=prompts, device=device, do_classifier_free_guidance=False, **defaults
        )
        # Batch first, as every conditioning entry is: the adapter keeps and stacks them per sample.
        return {"encoder_hidden_states_t5": t5, LLAMA: llama.transpose(0, 1), "pooled_embeds": pooled}

    def predict(self, pipeline, model, noisy, timesteps, conditioning):
        """Velocity noise - image, as the training noise's target, in the latents' layout."""
        conditioning = {**conditioning, LLAMA: conditioning[LLAMA].transpose(0, 1)}
        with routed_experts_with_gradients(model):
            prediction = model(hidden_states=noisy, timesteps=timesteps, **conditioning, return_dict=False)[0]
        if prediction.shape != noisy.shape:  # training mode's patch layout
            prediction = from_patch_layout(prediction, noisy.shape, model.config.patch_size)
        return -prediction


@contextmanager
def routed_experts_with_gradients(model: nn.Module):
    """While gradients are recorded, every mixture of experts runs its training path: the same mixture, but
    differentiable (the eval path, and any path of a model built with `force_inference_output`, computes the
    routed experts under torch.no_grad()). Modes and flags come back afterwards."""
    mixtures = [m for m in model.modules() if isinstance(m, MOEFeedForwardSwiGLU)]
    if not torch.is_grad_enabled() or not mixtures:
        yield
        return
    saved = [(m, [(sub, sub.training) for sub in m.modules()], m._force_inference_output) for m in mixtures]
    for mixture in mixtures:
        mixture.train()
        mixture._force_inference_output = False
    try:
        yield
    finally:
        for mixture, modes, forced in saved:
            for sub, training in modes:
                sub.training = training
            mixture._force_inference_output = forced


def from_patch_layout(prediction: torch.Tensor, shape: torch.Size, patch: int) -> torch.Tensor:
    """[batch, channels, tokens, patch x patch] (the model's training-mode output) -> [batch, channels, H, W]."""
    batch, channels, height, width = shape
    rows, cols = height // patch, width // patch
    tokens = prediction[:, :, : rows * cols]  # non-square latents are padded to the model's max_seq tokens
    return (
        tokens.reshape(batch, channels, rows, cols, patch, patch)
        .permute(0, 1, 2, 4, 3, 5)
        .reshape(batch, channels, height, width)
    )
