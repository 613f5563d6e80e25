"""Train the bundled `digits-sd3`: a tiny StableDiffusion3Pipeline (flow matching, joint-attention transformer).

Why: diffusion transformers are the second kind of denoiser diffprune prunes; this model has SD3's component
layout (AutoencoderKL, two CLIPTextModelWithProjection + CLIPTokenizer, no T5, SD3Transformer2DModel,
FlowMatchEulerDiscreteScheduler with SD3's shift 3.0) at a size that trains on 2 CPU cores, so depth pruning,
distillation and prompt-faithfulness checks of a transformer run offline end to end. It reuses digits-clip's
text tower (as both CLIP encoders) and digits-t2i's VAE (its latent space, with `shift_factor` 0 added).

Training cost: without a T5 encoder the pipeline appends `max_sequence_length` (256) all-zero tokens to the 16
CLIP tokens. Identical tokens stay identical through every block, so during training they are collapsed into
one token whose attention logit is raised by log(256) (CollapsedPaddingAttention): the same function and the
same gradients at 17 instead of 272 context tokens. The script checks that equivalence against the stock
attention before training; the shipped model uses the stock processor.

Reproduce:  .venv/bin/python assets/training/train_digits_sd3.py --out assets/models/digits-sd3
"""

from __future__ import annotations

import argparse
import copy
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from diffusers.models.attention_processor import JointAttnProcessor2_0
from transformers import CLIPModel, CLIPTextModelWithProjection, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for diffprune
from card import count_params, folder_size_mb, write_card  # noqa: E402
from digit_prompts import all_prompts  # noqa: E402
from digits_data import digits_split, to_signed  # noqa: E402
from grids import save_grid  # noqa: E402
from train_digits_t2i import faithfulness  # noqa: E402
from training import optimizer_step, schedule_factor  # noqa: E402

from diffprune.evaluation.metrics.feature_networks import FeatureClassifier  # noqa: E402
from diffprune.models.training_noise import TrainingNoise  # noqa: E402

IMAGE_SIZE = 16
PADDING_TOKENS = 256  # StableDiffusion3Pipeline's default max_sequence_length: zero tokens where T5's would be
SCHEDULER = dict(num_train_timesteps=1000, shift=3.0)  # what stabilityai/stable-diffusion-3-medium ships


def build_transformer(text_width: int) -> SD3Transformer2DModel:
    """SD3's MMDiT in miniature: 8x8 latents in 1x1 patches (64 image tokens), width 64, 6 joint blocks (the last
    one context_pre_only, as in SD3), context = the two CLIP towers' states side by side."""
    return SD3Transformer2DModel(
        sample_size=IMAGE_SIZE // 2,
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=6,
        attention_head_dim=16,
        num_attention_heads=4,
        joint_attention_dim=2 * text_width,
        caption_projection_dim=64,
        pooled_projection_dim=2 * text_width,
        pos_embed_max_size=IMAGE_SIZE // 2,
    )


def clip_text_encoder(clip: CLIPModel) -> CLIPTextModelWithProjection:
    """digits-clip's text tower and projection as the CLIPTextModelWithProjection SD3 pipelines take."""
    config = copy.deepcopy(clip.config.text_config)
    config.projection_dim = clip.config.projection_dim
    encoder = CLIPTextModelWithProjection(config)
    state = {f"text_model.{key}": value for key, value in clip.text_model.state_dict().items()}
    state["text_projection.weight"] = clip.text_projection.weight
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


class CollapsedPaddingAttention:
    """SD3's joint attention with the last context token standing for `copies` identical tokens: its key gets
    log(copies) added to every attention logit, which is exactly what `copies` equal keys and values give."""

    def __init__(self, copies: int):
        self.log_copies = math.log(copies)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        batch, image_tokens = hidden_states.shape[:2]

        def heads(states, projection, norm):
            states = projection(states).view(batch, -1, attn.heads, attn.inner_dim // attn.heads).transpose(1, 2)
            return norm(states) if norm is not None else states

        query = torch.cat(
            [
                heads(hidden_states, attn.to_q, attn.norm_q),
                heads(encoder_hidden_states, attn.add_q_proj, attn.norm_added_q),
            ],
            2,
        )
        key = torch.cat(
            [
                heads(hidden_states, attn.to_k, attn.norm_k),
                heads(encoder_hidden_states, attn.add_k_proj, attn.norm_added_k),
            ],
            2,
        )
        value = torch.cat(
            [heads(hidden_states, attn.to_v, None), heads(encoder_hidden_states, attn.add_v_proj, None)], 2
        )
        bias = torch.zeros(key.shape[2], dtype=query.dtype, device=query.device)
        bias[-1] = self.log_copies
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias.expand(query.shape[2], -1))
        out = out.transpose(1, 2).reshape(batch, -1, attn.inner_dim).to(query.dtype)
        image, context = out[:, :image_tokens], out[:, image_tokens:]
        if not attn.context_pre_only:
            context = attn.to_add_out(context)
        return attn.to_out[1](attn.to_out[0](image)), context


@torch.no_grad()
def check_collapse(transformer, latents, embeds, pooled) -> float:
    """Max difference between the stock model on the full padding and the collapsed one on a single token."""
    full = torch.cat([embeds, embeds[:, -1:].expand(-1, PADDING_TOKENS - 1, -1)], 1)
    timestep = torch.full((latents.shape[0],), 500.0)
    transformer.set_attn_processor(JointAttnProcessor2_0())
    reference = transformer(latents, full, pooled, timestep).sample
    transformer.set_attn_processor(CollapsedPaddingAttention(PADDING_TOKENS))
    collapsed = transformer(latents, embeds, pooled, timestep).sample
    return (reference - collapsed).abs().max().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="assets/models/digits-clip")
    ap.add_argument("--vae", default="assets/models/digits-t2i/vae", help="the trained digits VAE to reuse")
    ap.add_argument("--judge", default="assets/models/digits-features")
    ap.add_argument("--out", default="assets/models/digits-sd3")
    ap.add_argument("--prompts", default="assets/prompts/digits.txt")
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", type=float, default=7.0, help="StableDiffusion3Pipeline's default")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    x_tr, y_tr, x_te, y_te = digits_split()
    images = to_signed(np.concatenate([x_tr, x_te]), IMAGE_SIZE).repeat(1, 3, 1, 1)
    labels = torch.from_numpy(np.concatenate([y_tr, y_te]))
    vae = AutoencoderKL.from_pretrained(args.vae).eval()
    vae.register_to_config(shift_factor=0.0)  # SD3 pipelines decode latents / scaling_factor + shift_factor
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mean * vae.config.scaling_factor

    tok = CLIPTokenizer.from_pretrained(args.clip)
    clip = CLIPModel.from_pretrained(args.clip)
    text_encoder = clip_text_encoder(clip)
    transformer = build_transformer(text_encoder.config.hidden_size)
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        text_encoder_2=copy.deepcopy(text_encoder),
        tokenizer_2=copy.deepcopy(tok),
        text_encoder_3=None,
        tokenizer_3=None,
    )
    pipe.set_progress_bar_config(disable=True)

    def embed(prompts):
        """The pipeline's own prompt encoding, with one padding token instead of 256 (see the docstring)."""
        with torch.no_grad():
            embeds, _, pooled, _ = pipe.encode_prompt(
                prompts, None, None, do_classifier_free_guidance=False, max_sequence_length=1
            )
        return embeds, pooled

    bank = [embed(all_prompts(d)) for d in range(10)]
    bank_embeds = torch.stack([b[0] for b in bank])  # [10, P, 17, D]
    bank_pooled = torch.stack([b[1] for b in bank])  # [10, P, D]
    uncond_embeds, uncond_pooled = embed([""])  # the pipeline's negative prompt for guidance
    assert bank_embeds[..., -1, :].abs().max() == 0, "the padding token should be all zeros"
    error = check_collapse(transformer, latents[:4], bank_embeds[:4, 0], bank_pooled[:4, 0])
    print(f"collapsed padding vs stock attention: max |diff| {error:.2e}")
    assert error < 1e-4, error

    ema = copy.deepcopy(transformer).requires_grad_(False)
    noise = TrainingNoise(scheduler)  # diffprune's flow-matching forward process: the one its losses use
    opt = torch.optim.AdamW(transformer.parameters(), lr=args.lr, weight_decay=0.0)
    start = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, len(latents), (args.batch,), generator=gen)
        which = torch.randint(0, bank_embeds.shape[1], (args.batch,), generator=gen)
        embeds, pooled = bank_embeds[labels[idx], which], bank_pooled[labels[idx], which]
        # 10% caption dropout: the model also learns p(x), which classifier-free guidance needs.
        drop = torch.rand(args.batch, generator=gen) < 0.1
        embeds = torch.where(drop[:, None, None], uncond_embeds, embeds)
        pooled = torch.where(drop[:, None], uncond_pooled, pooled)
        batch = noise.draw(latents[idx], gen)
        prediction = transformer(batch.noisy, embeds, pooled, batch.timesteps).sample
        loss = F.mse_loss(prediction, batch.target)
        optimizer_step(transformer, ema, opt, loss, args.lr * schedule_factor(step, args.steps), step)
        if step % 200 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)
    train_s = time.time() - start

    ema.set_attn_processor(JointAttnProcessor2_0())
    pipe.register_modules(transformer=ema)
    pipe.save_pretrained(args.out, safe_serialization=True)
    for folder in ("tokenizer", "tokenizer_2"):  # slow CLIPTokenizers (transformers 4) need these too
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(Path(args.clip) / name, Path(args.out) / folder / name)
    if Path(args.prompts).is_file():
        shutil.copy(args.prompts, Path(args.out) / "calibration_prompts.txt")

    pipe = StableDiffusion3Pipeline.from_pretrained(args.out, text_encoder_3=None, tokenizer_3=None)  # what ships
    pipe.set_progress_bar_config(disable=True)
    judge = FeatureClassifier.from_pretrained(args.judge).eval()
    acc, imgs = faithfulness(pipe, judge, per_digit=10, guidance=args.guidance, steps=20, seed=0)
    acc_g1, _ = faithfulness(pipe, judge, per_digit=5, guidance=1.0, steps=20, seed=1)
    order = torch.arange(100).view(10, 10).t().reshape(-1)  # columns read 0..9 left to right
    save_grid(imgs[order], f"{args.out}/samples.png", nrow=10, scale=6)
    print(f"faithfulness: guidance {args.guidance}: {acc:.3f}; guidance 1: {acc_g1:.3f}")

    write_card(
        args.out,
        "digits-sd3",
        {
            "What": "A tiny `StableDiffusion3Pipeline`: SD3Transformer2DModel (MMDiT joint attention) + two "
            "CLIPTextModelWithProjection / CLIPTokenizer (both digits-clip's text tower) + no T5 (`text_encoder_3` is "
            "None; the pipeline appends 256 zero tokens in its place, as SD3 does without T5) + AutoencoderKL (digits-t2i's "
            "VAE, `shift_factor` 0) + FlowMatchEulerDiscreteScheduler (shift 3.0, as SD3-medium ships). "
            "`pipe('a handwritten seven', num_inference_steps=20)` draws a 16x16 seven. `calibration_prompts.txt` is "
            "diffprune's default calibration prompt set for the folder.",
            "Data": "All 1797 `load_digits` images, 16x16, grayscale replicated to RGB, [-1, 1], encoded once by the VAE; "
            "each paired with a random prompt for its digit from assets/training/digit_prompts.py (64 per digit); 10% of "
            "captions replaced by the empty prompt (the pipeline's negative prompt) for classifier-free guidance.",
            "Architecture": f"Transformer: sample_size 8, patch_size 1 (64 image tokens), 6 joint blocks (the last "
            f"context_pre_only), 4 heads x 16, joint_attention_dim / pooled_projection_dim {2 * text_encoder.config.hidden_size} "
            f"(the two CLIP towers side by side), {count_params(ema):,} params. Text encoders (frozen): "
            f"{count_params(text_encoder):,} params each. VAE: latent 4x8x8, scaling_factor {vae.config.scaling_factor:.4f}.",
            "Training": f"{args.steps} steps, batch {args.batch}, AdamW lr {args.lr} (warm-up + cosine), rectified-flow "
            "velocity MSE with sigmas drawn uniformly from the scheduler's shifted training sigmas (diffprune's "
            f"TrainingNoise), EMA 0.995 (EMA weights shipped), {train_s:.0f} s on {args.threads} CPU thread(s). The 256 "
            "zero padding tokens were trained as one token with log(256) added to its attention logit, which computes "
            "the same function (checked at the start of the run; max difference "
            f"{error:.1e}). Seed {args.seed}.",
            "Metrics": f"Prompt faithfulness (digits-features classifies the generated image as the prompted digit), "
            f"prompts 'a handwritten <word>', 10 per digit, 20 Euler steps, seed 0: **{acc * 100:.1f}%** at "
            f"guidance_scale {args.guidance}; {acc_g1 * 100:.1f}% without guidance (scale 1, 5 per digit, seed 1).",
            "Samples": f"`samples.png`: columns are digits 0..9, 10 seeds each, guidance {args.guidance}, 20 steps.",
            "Reproduce": "```\n.venv/bin/python assets/training/train_digits_sd3.py --out assets/models/digits-sd3\n```\n"
            "(needs digits-clip, digits-t2i's VAE and digits-features, see their cards)",
            "Size": f"{folder_size_mb(args.out):.2f} MB (safetensors).",
        },
    )
    print(f"done: {train_s:.0f}s size {folder_size_mb(args.out):.2f} MB")


if __name__ == "__main__":
    main()
