"""Train the bundled `tones-audio`: an AudioDiffusionPipeline on synthetic melodies (32x32 mels).

Why: the toolkit prunes audio diffusion UNets too; this gives it a real, trained
`AudioDiffusionPipeline` (Mel + UNet2DModel + DDIMScheduler) that loads offline and renders audio,
small enough to train on one CPU thread. Data comes from assets/training/tones_data.py.

Reproduce:  .venv/bin/python assets/training/train_tones_audio.py --out assets/models/tones-audio
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import wave
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AudioDiffusionPipeline, DDIMScheduler, DDPMScheduler, UNet2DModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for diffprune
from card import count_params, folder_size_mb, write_card  # noqa: E402
from grids import save_grid  # noqa: E402
from tones_data import HOP, N_FFT, RES, SAMPLE_RATE, make_mel, tones_dataset  # noqa: E402
from training import optimizer_step, schedule_factor  # noqa: E402

from diffprune.evaluation.metrics.feature_networks import FeatureClassifier  # noqa: E402


def build_unet() -> UNet2DModel:
    """32x32 mel -> three resolutions (32, 16, 8), four resnets per level, self-attention at 16x16 and
    8x8: ~45% of the MACs sit in removable units (non-concat resnets, attention, mid block), so the
    60-70% MAC targets of the demo and benchmarks are reachable."""
    return UNet2DModel(
        sample_size=(RES, RES),
        in_channels=1,
        out_channels=1,
        layers_per_block=4,
        block_out_channels=(16, 32, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=32,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="assets/models/tones-audio")
    ap.add_argument("--judge", default="assets/models/tones-features")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    images, _ = tones_dataset(per_class=200, seed=1)
    data = images * 2 - 1

    unet = build_unet()
    ema = copy.deepcopy(unet).requires_grad_(False)
    train_sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr)
    t0 = time.time()
    for step in range(args.steps):
        x0 = data[torch.randint(0, len(data), (args.batch,), generator=gen)]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        loss = F.mse_loss(unet(train_sched.add_noise(x0, noise, t), t).sample, noise)
        optimizer_step(unet, ema, opt, loss, args.lr * schedule_factor(step, args.steps), step)
        if step % 200 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    train_s = time.time() - t0

    # DDIM at inference: 50 default steps instead of 1000, same betas as training.
    pipe = AudioDiffusionPipeline(
        vqvae=None, unet=ema, mel=make_mel(), scheduler=DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(args.out, safe_serialization=True)

    t1 = time.time()
    out = pipe(batch_size=40, steps=50, generator=torch.Generator().manual_seed(0))
    sample_s = time.time() - t1
    gen_imgs = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0) for im in out.images]).unsqueeze(
        1
    )
    save_grid(gen_imgs, f"{args.out}/samples.png", nrow=10, scale=4)
    audio = np.asarray(out.audios)[0, 0]
    with wave.open(f"{args.out}/sample.wav", "wb") as w:  # one clip to listen to
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())

    judge_line = "tones-features not found; class spread not measured."
    if Path(args.judge).exists():
        judge = FeatureClassifier.from_pretrained(args.judge).eval()
        with torch.no_grad():
            probs = judge.classify(gen_imgs).softmax(1)
        pred = probs.argmax(1)
        counts = torch.bincount(pred, minlength=10).tolist()
        conf = probs.max(1).values.mean().item()
        judge_line = (
            f"tones-features labels the 40 samples of `samples.png` as classes {counts} (counts for 0..9), "
            f"mean top-class probability {conf:.3f} (a confident, spread-out labelling means the samples "
            f"look like the ten melodies)."
        )
        print(judge_line)

    write_card(
        args.out,
        "tones-audio",
        {
            "What": "`AudioDiffusionPipeline` (diffusers `Mel` + `UNet2DModel` + `DDIMScheduler`, no VQ-VAE) that "
            "generates 32x32 mel spectrograms of short synthetic melodies and turns them into 8 kHz audio (Griffin-Lim). "
            "Returns `images` and `audios`.",
            "Data": f"assets/training/tones_data.py: ten classes of 2-4-note melodies with random transposition, tempo, onset, "
            f"harmonics, loudness and noise; 200 clips per class (seed 1), each {RES * HOP - 1} samples at "
            f"{SAMPLE_RATE} Hz rendered by `Mel(x_res={RES}, y_res={RES}, sample_rate={SAMPLE_RATE}, n_fft={N_FFT}, "
            f"hop_length={HOP})`, scaled to [-1, 1].",
            "Architecture": f"UNet2DModel sample_size (32, 32), block_out_channels (16, 32, 64), down (DownBlock2D, "
            f"AttnDownBlock2D, AttnDownBlock2D), up (AttnUpBlock2D, AttnUpBlock2D, UpBlock2D), layers_per_block 4, "
            f"norm_num_groups 8. Parameters: {count_params(ema):,}.",
            "Training": f"{args.steps} steps, batch {args.batch}, AdamW lr {args.lr} (warm-up + cosine), epsilon MSE "
            f"with linear betas / 1000 steps (DDPMScheduler), EMA 0.995 (EMA weights shipped), seed {args.seed}. "
            f"Wall time {train_s:.0f} s on 1 CPU thread.",
            "Samples": f"`samples.png`: 40 generated mel images (DDIM, 50 steps, seed 0, {sample_s:.0f} s incl. "
            "Griffin-Lim); `sample.wav`: the audio of the first one.",
            "Metrics": judge_line,
            "Reproduce": "```\n.venv/bin/python assets/training/train_feature_networks.py --out assets/models\n"
            ".venv/bin/python assets/training/train_tones_audio.py --out assets/models/tones-audio\n```",
            "Size": f"{folder_size_mb(args.out):.2f} MB (safetensors).",
        },
    )
    print(f"done: {train_s:.0f}s, size {folder_size_mb(args.out):.2f} MB")


if __name__ == "__main__":
    main()
