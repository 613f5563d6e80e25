"""Train the bundled `digits-t2i`: a tiny latent text-to-image StableDiffusionPipeline for digits.

Why: the pruner's main target is the cross-attention UNet of Stable Diffusion; this model has the
same component layout (AutoencoderKL, CLIPTextModel + CLIPTokenizer, UNet2DConditionModel,
scheduler) at a size that trains on one CPU thread, so pruning, distillation and prompt-faithfulness
checks run offline end to end. Needs digits-clip (its text tower and tokenizer are reused).

Reproduce:  .venv/bin/python assets/training/train_digits_t2i.py --clip assets/models/digits-clip --out assets/models/digits-t2i
Retrain only the UNet, keeping an already-trained VAE (and so its latent space):
            .venv/bin/python assets/training/train_digits_t2i.py --reuse-vae assets/models/digits-t2i/vae --out /tmp/digits-t2i-v2
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for diffprune
from card import count_params, folder_size_mb, write_card  # noqa: E402
from digit_prompts import WORDS, all_prompts, digit_of_prompt  # noqa: E402
from digits_data import digits_split, to_signed  # noqa: E402
from grids import save_grid  # noqa: E402
from training import optimizer_step, schedule_factor  # noqa: E402

from diffprune.evaluation.metrics.feature_networks import FeatureClassifier  # noqa: E402

IMAGE_SIZE = 16
BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def build_vae() -> AutoencoderKL:
    """16x16 RGB -> 4x8x8 latents (one downsampling): fast to train and decodes sharp digits."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        sample_size=IMAGE_SIZE,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=16,
    )


def build_unet(cross_dim: int) -> UNet2DConditionModel:
    """Cross-attention at 8x8 and in the 4x4 mid block: the SD layout in miniature. layers_per_block 2 as in
    Stable Diffusion, so each block has shape-preserving resnets / transformer blocks the pruner can remove."""
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_dim,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def train_vae(vae, images, steps, gen, batch=32, lr=2e-3):
    """Reconstruction (L1 + MSE) plus a small KL, so latents stay smooth enough to diffuse in."""
    opt = torch.optim.AdamW(vae.parameters(), lr=lr)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        x = images[torch.randint(0, len(images), (batch,), generator=gen)]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        kl = post.kl().mean() / z[0].numel()
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-3 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"vae step {step} rec {F.mse_loss(rec, x).item():.4f} kl {kl.item():.3f}", flush=True)
    vae.eval()


@torch.no_grad()
def faithfulness(pipe, judge, per_digit, guidance, steps, seed):
    """Fraction of generated images the digits-features classifier labels as the prompted digit."""
    prompts = [f"a handwritten {WORDS[d]}" for d in range(10) for _ in range(per_digit)]
    images = pipe(
        prompts,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(seed),
        output_type="pt",
    ).images
    pred = judge.classify(images).argmax(1)
    want = torch.tensor([digit_of_prompt(p) for p in prompts])
    return (pred == want).float().mean().item(), images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="assets/models/digits-clip")
    ap.add_argument("--judge", default="assets/models/digits-features")
    ap.add_argument("--out", default="assets/models/digits-t2i")
    ap.add_argument("--vae-steps", type=int, default=800)
    ap.add_argument(
        "--reuse-vae",
        default=None,
        metavar="FOLDER",
        help="load this trained AutoencoderKL (e.g. assets/models/digits-t2i/vae) instead of training one; "
        "keeps its latent space and scaling_factor",
    )
    ap.add_argument(
        "--prompts",
        default="assets/prompts/digits.txt",
        help="copied into the pipeline folder as calibration_prompts.txt (diffprune's default calibration set)",
    )
    ap.add_argument("--steps", type=int, default=2200)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", type=float, default=5.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    rng = random.Random(args.seed)

    x_tr, y_tr, x_te, y_te = digits_split()
    images = to_signed(np.concatenate([x_tr, x_te]), IMAGE_SIZE).repeat(1, 3, 1, 1)
    labels = torch.from_numpy(np.concatenate([y_tr, y_te]))

    t0 = time.time()
    if args.reuse_vae:
        vae = AutoencoderKL.from_pretrained(args.reuse_vae).eval()
    else:
        vae = build_vae()
        train_vae(vae, images, args.vae_steps, gen)
    vae_s = time.time() - t0
    with torch.no_grad():
        lat = vae.encode(images).latent_dist.mean
        if not args.reuse_vae:  # a reused VAE keeps its own scaling_factor (same latent space)
            vae.register_to_config(scaling_factor=float(1.0 / lat.std()))
        latents = lat * vae.config.scaling_factor
        rec_mse = F.mse_loss(vae.decode(lat).sample, images).item()
    print(
        f"vae: {vae_s:.0f}s, scaling_factor {vae.config.scaling_factor:.4f}, rec mse {rec_mse:.4f}"
        f"{' (reused from ' + args.reuse_vae + ')' if args.reuse_vae else ''}"
    )

    # Text encoder = digits-clip's text tower (frozen). Every training prompt is embedded once up front.
    tok = CLIPTokenizer.from_pretrained(args.clip)
    clip = CLIPModel.from_pretrained(args.clip)
    text_encoder = CLIPTextModel(clip.config.text_config)
    # transformers 4 wraps the tower in `.text_model`, transformers 5 does not; strict load either way.
    target = getattr(text_encoder, "text_model", text_encoder)
    target.load_state_dict(clip.text_model.state_dict(), strict=True)
    text_encoder.eval()
    prompt_bank = [all_prompts(d) for d in range(10)]

    def embed(prompts):
        enc = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
        with torch.no_grad():
            return text_encoder(enc["input_ids"])[0]

    bank = torch.stack([embed(p) for p in prompt_bank])  # [10, P, T, D]
    uncond = embed([""])[0]

    unet = build_unet(text_encoder.config.hidden_size)
    ema = copy.deepcopy(unet).requires_grad_(False)
    noise_sched = DDPMScheduler(**BETAS)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr)
    t1 = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, len(latents), (args.batch,), generator=gen)
        z0 = latents[idx]
        which = torch.randint(0, bank.shape[1], (args.batch,), generator=gen)
        cond = bank[labels[idx], which]
        # 10% caption dropout: the model also learns p(x), which classifier-free guidance needs.
        drop = torch.rand(args.batch, generator=gen) < 0.1
        cond = torch.where(drop[:, None, None], uncond[None], cond)
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        zt = noise_sched.add_noise(z0, noise, t)
        loss = F.mse_loss(unet(zt, t, encoder_hidden_states=cond).sample, noise)
        optimizer_step(unet, ema, opt, loss, args.lr * schedule_factor(step, args.steps), step)
        if step % 200 == 0 or step == args.steps - 1:
            print(f"unet step {step} loss {loss.item():.4f} {time.time() - t1:.0f}s", flush=True)
    unet_s = time.time() - t1
    _ = rng

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        unet=ema,
        scheduler=DPMSolverMultistepScheduler(**BETAS, steps_offset=1),  # steps_offset=1: what SD pipelines expect
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(args.out, safe_serialization=True)
    # transformers 5 saves only tokenizer.json; keep vocab.json/merges.txt so older slow CLIPTokenizers load it too.
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(Path(args.clip) / name, Path(args.out) / "tokenizer" / name)
    if Path(args.prompts).is_file():
        shutil.copy(args.prompts, Path(args.out) / "calibration_prompts.txt")

    judge = FeatureClassifier.from_pretrained(args.judge).eval()
    acc, imgs = faithfulness(pipe, judge, per_digit=10, guidance=args.guidance, steps=20, seed=0)
    acc_g1, _ = faithfulness(pipe, judge, per_digit=5, guidance=1.0, steps=20, seed=1)
    # Grid: rows = digits 0..9 (10 per row) -> transpose to columns reads 0..9 left to right.
    order = torch.arange(100).view(10, 10).t().reshape(-1)
    save_grid(imgs[order], f"{args.out}/samples.png", nrow=10, scale=6)
    print(f"faithfulness: guidance {args.guidance}: {acc:.3f}; guidance 1: {acc_g1:.3f}")

    write_card(
        args.out,
        "digits-t2i",
        {
            "What": "A tiny latent text-to-image `StableDiffusionPipeline` (AutoencoderKL + digits-clip's CLIPTextModel "
            "and CLIPTokenizer + UNet2DConditionModel with cross-attention + DPMSolverMultistepScheduler). "
            "`pipe('a handwritten seven', num_inference_steps=20)` draws a 16x16 seven. safety_checker/feature_extractor "
            "are None. `calibration_prompts.txt` (a copy of assets/prompts/digits.txt) is the folder's default calibration "
            "prompt set for diffprune.",
            "Data": "All 1797 `load_digits` images, upsampled to 16x16, grayscale replicated to RGB, [-1, 1]; each paired "
            "with a random prompt for its digit from assets/training/digit_prompts.py (64 prompts per digit); 10% of captions "
            "replaced by the empty prompt for classifier-free guidance.",
            "Architecture": f"VAE: block_out_channels (32, 64), 1 layer per block, latent 4x8x8 (scaling_factor "
            f"{vae.config.scaling_factor:.4f}), {count_params(vae):,} params. UNet: sample_size 8, block_out_channels "
            f"(32, 64), down (CrossAttnDownBlock2D, DownBlock2D), up (UpBlock2D, CrossAttnUpBlock2D), layers_per_block 2, "
            f"cross_attention_dim {text_encoder.config.hidden_size}, attention_head_dim 8, {count_params(ema):,} params. "
            f"Text encoder (frozen, from digits-clip): {count_params(text_encoder):,} params.",
            "Training": (
                f"VAE: reused unchanged from `{args.reuse_vae}` (`--reuse-vae`; originally {args.vae_steps} "
                f"steps, batch 32, AdamW lr 2e-3 cosine, L1+MSE+1e-3 KL) "
                if args.reuse_vae
                else f"VAE: {args.vae_steps} steps, batch 32, AdamW lr 2e-3 cosine, L1+MSE+1e-3 KL, {vae_s:.0f} s "
            )
            + f"(reconstruction MSE {rec_mse:.4f} in [-1, 1]). UNet: {args.steps} steps, batch {args.batch}, AdamW lr "
            f"{args.lr} (warm-up + cosine), epsilon MSE with scaled_linear betas 0.00085-0.012 / 1000 steps, EMA 0.995 "
            f"(EMA weights shipped), {unet_s:.0f} s. Seed {args.seed}. 1 CPU thread.",
            "Metrics": f"Prompt faithfulness (digits-features classifies the generated image as the prompted digit), "
            f"prompts 'a handwritten <word>', 10 per digit, 20 DPM-Solver steps, seed 0: **{acc * 100:.1f}%** at "
            f"guidance_scale {args.guidance}; {acc_g1 * 100:.1f}% without guidance (scale 1, 5 per digit, seed 1).",
            "Samples": f"`samples.png`: columns are digits 0..9 ('a handwritten zero' ... 'nine'), 10 seeds each, "
            f"guidance {args.guidance}, 20 steps.",
            "Reproduce": "```\n.venv/bin/python assets/training/train_feature_networks.py --out assets/models\n"
            ".venv/bin/python assets/training/train_digits_clip.py --out assets/models/digits-clip\n"
            ".venv/bin/python assets/training/train_digits_t2i.py --clip assets/models/digits-clip --out assets/models/digits-t2i\n```"
            + (
                f"\nThis version kept the VAE of the previous one: `.venv/bin/python assets/training/train_digits_t2i.py --reuse-vae "
                f"{args.reuse_vae} --out <new folder>`."
                if args.reuse_vae
                else ""
            ),
            "Size": f"{folder_size_mb(args.out):.2f} MB (safetensors).",
        },
    )
    print(f"done: vae {vae_s:.0f}s unet {unet_s:.0f}s size {folder_size_mb(args.out):.2f} MB")


if __name__ == "__main__":
    main()
