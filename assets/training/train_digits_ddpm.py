"""Train the bundled `digits-ddpm`: an unconditional DDPM on scikit-learn's digits at 16x16.

Why this model exists: the pruning toolkit needs a real, trained pixel-space UNet with an
attention block to prune, score and distil, small enough to train on one CPU thread in minutes
and loadable offline with the stock `DDPMPipeline.from_pretrained(folder)`.

Reproduce:  .venv/bin/python assets/training/train_digits_ddpm.py --out assets/models/digits-ddpm
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from card import count_params, folder_size_mb, write_card
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from digits_data import digits_split, to_signed
from grids import save_grid
from training import optimizer_step, schedule_factor  # noqa: E402


def build_unet() -> UNet2DModel:
    """Three resolutions (16, 8, 4), three resnets per level and self-attention at 16x16 and 8x8: every
    block kind the pruner handles (resnets, attention, down/up samplers), with ~47% of the MACs in
    removable units (non-concat resnets, attention, mid block) so 60-70% MAC targets are reachable."""
    return UNet2DModel(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        layers_per_block=3,
        block_out_channels=(32, 64, 64),
        down_block_types=("AttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=32,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="assets/models/digits-ddpm")
    ap.add_argument("--steps", type=int, default=650)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(1)  # the machine is shared; results are reproducible at one thread
    torch.manual_seed(args.seed)
    x_tr, _, x_te, _ = digits_split()
    # All 1797 digits: the DDPM has no held-out metric, more data gives cleaner samples.
    import numpy as np

    data = to_signed(np.concatenate([x_tr, x_te]), 16)

    unet = build_unet()
    ema = copy.deepcopy(unet).requires_grad_(False)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)

    t0 = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, len(data), (args.batch,), generator=gen)
        x0 = data[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        xt = sched.add_noise(x0, noise, t)
        loss = F.mse_loss(unet(xt, t).sample, noise)
        optimizer_step(unet, ema, opt, loss, args.lr * schedule_factor(step, args.steps), step)
        if step % 200 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    train_s = time.time() - t0

    pipe = DDPMPipeline(unet=ema, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(args.out, safe_serialization=True)

    t1 = time.time()
    out = pipe(batch_size=64, num_inference_steps=250, generator=torch.Generator().manual_seed(0), output_type="np")
    sample_s = time.time() - t1
    imgs = torch.from_numpy(out.images).permute(0, 3, 1, 2)
    save_grid(imgs, f"{args.out}/samples.png", nrow=8, scale=6)

    write_card(
        args.out,
        "digits-ddpm",
        {
            "What": "Unconditional `DDPMPipeline` (UNet2DModel + DDPMScheduler, 1000 train steps, linear betas) "
            "that draws 16x16 grayscale handwritten digits. Bundled so `diffprune` has a real pixel-space UNet "
            "with attention blocks to prune offline.",
            "Data": "scikit-learn `load_digits` (1797 images, 8x8, values 0..16), bilinearly upsampled to 16x16 and "
            "scaled to [-1, 1]. 1 channel.",
            "Architecture": f"UNet2DModel sample_size 16, block_out_channels (32, 64, 64), down (AttnDownBlock2D, "
            f"AttnDownBlock2D, DownBlock2D), up (UpBlock2D, AttnUpBlock2D, AttnUpBlock2D), layers_per_block 3, "
            f"norm_num_groups 8, attention_head_dim 32. Parameters: {count_params(ema):,}.",
            "Training": f"{args.steps} steps, batch {args.batch}, AdamW lr {args.lr} (100-step warm-up, cosine decay), "
            f"grad clip 1.0, epsilon-prediction MSE, EMA 0.995 (EMA weights shipped), seed {args.seed}. "
            f"Wall time {train_s:.0f} s on 1 CPU thread. Final batch loss {loss.item():.4f}.",
            "Samples": f"`samples.png`: 64 samples, 250 DDPM steps, generator seed 0 ({sample_s:.0f} s).",
            "Metrics": "Recognisability is checked by eye on `samples.png`; the digits-features classifier gives the FID "
            "feature space for pruned-vs-dense comparisons.",
            "Reproduce": "```\n.venv/bin/python assets/training/train_digits_ddpm.py --out assets/models/digits-ddpm\n```",
            "Size": f"{folder_size_mb(args.out):.2f} MB (safetensors).",
        },
    )
    print(f"done: train {train_s:.0f}s, sample {sample_s:.0f}s, size {folder_size_mb(args.out):.2f} MB")


if __name__ == "__main__":
    main()
