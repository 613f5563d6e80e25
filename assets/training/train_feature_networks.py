"""Train the bundled FID feature networks `digits-features` and `tones-features`.

Why: FID and prompt-faithfulness of the bundled digit and audio models need a feature space that
works offline on 16x16 digits and 32x32 mel spectrograms; a classifier's penultimate layer is that
space, and its logits double as the "did the model draw the asked-for digit" judge.

Reproduce:  .venv/bin/python assets/training/train_feature_networks.py --out assets/models
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for diffprune
from card import count_params, folder_size_mb, write_card  # noqa: E402
from digits_data import digits_split, to_unit  # noqa: E402
from grids import save_grid  # noqa: E402
from tones_data import NUM_CLASSES, tones_dataset  # noqa: E402

from diffprune.evaluation.metrics.feature_networks import FeatureClassifier  # noqa: E402


def augment(x: torch.Tensor, gen: torch.Generator, shift: float, scale: float, noise: float) -> torch.Tensor:
    """Random small affine jitter, blur-ish resampling and noise.

    Why: the classifier judges *generated* images, which are a bit off-centre and blurrier than
    the data; jitter keeps it from over-trusting exact pixel positions.
    """
    n = x.shape[0]
    s = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = s
    theta[:, 1, 1] = s
    theta[:, :, 2] = (torch.rand(n, 2, generator=gen) * 2 - 1) * shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (x + noise * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def train(model, x_tr, y_tr, epochs, gen, aug, lr=3e-3, batch=64):
    """Plain AdamW + cosine schedule cross-entropy training on `classify` logits."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x_tr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(len(x_tr), generator=gen)
        for i in range(0, len(x_tr), batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(model.classify(aug(x_tr[idx])), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {ep} loss {loss.item():.4f}", flush=True)
    model.eval()


@torch.no_grad()
def accuracy(model, x, y) -> float:
    return (model.classify(x).argmax(1) == y).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="assets/models", help="parent folder of digits-features/ and tones-features/")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--digits-epochs", type=int, default=30)
    ap.add_argument("--tones-epochs", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)

    # ---- digits ----
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_tr, y_tr, x_te, y_te = digits_split()
    x_tr, x_te = to_unit(x_tr, 16), to_unit(x_te, 16)
    y_tr, y_te = torch.from_numpy(y_tr), torch.from_numpy(y_te)
    model = FeatureClassifier(in_channels=1, image_size=16, num_classes=10, feature_dim=64, width=32)
    t0 = time.time()
    train(model, x_tr, y_tr, args.digits_epochs, gen, lambda x: augment(x, gen, 0.12, 0.1, 0.05))
    wall = time.time() - t0
    acc = accuracy(model, x_te, y_te)
    folder = out / "digits-features"
    model.save_pretrained(folder, safe_serialization=True)
    save_grid(x_te[:64], folder / "samples.png", nrow=8, scale=6)
    pred = model.classify(x_te[:64]).argmax(1).tolist()
    write_card(
        folder,
        "digits-features",
        {
            "What": "`diffprune.evaluation.metrics.feature_networks.FeatureClassifier` trained to classify scikit-learn digits. Its "
            "64-d penultimate layer (`forward`) is the FID feature space for digits models; `classify` gives logits "
            "used to check that a text-to-image model drew the prompted digit. Load with "
            "`FeatureClassifier.from_pretrained(folder)`; pass it to `FrechetInceptionDistance(feature=model, normalize=True)`.",
            "Data": "`load_digits`, stratified 80/20 split with random_state 0 (assets/training/digits_data.py): "
            f"{len(x_tr)} train, {len(x_te)} held out. 8x8 upsampled bilinearly to 16x16, [0, 1]. Training uses small "
            "random shifts/scales and pixel noise.",
            "Architecture": f"4 conv layers (width 32/64, GroupNorm, SiLU, two max-pools), 2x2 average pool, "
            f"linear to 64 features, linear head to 10 classes. Inputs: uint8 0..255 or float [0, 1], any channels "
            f"(averaged to 1), any size (resized to 16). Parameters: {count_params(model):,}.",
            "Training": f"{args.digits_epochs} epochs, batch 64, AdamW one-cycle lr 3e-3, seed {args.seed}; "
            f"wall time {wall:.0f} s on 1 CPU thread.",
            "Metrics": f"Held-out accuracy: **{acc * 100:.2f}%** ({len(x_te)} images).",
            "Samples": f"`samples.png`: the first 64 held-out digits; predicted labels row by row: {pred}.",
            "Reproduce": "```\n.venv/bin/python assets/training/train_feature_networks.py --out assets/models\n```",
            "Size": f"{folder_size_mb(folder):.2f} MB (safetensors).",
        },
    )
    print(f"digits-features: held-out accuracy {acc:.4f}, {wall:.0f}s")

    # ---- tones ----
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    xt_tr, yt_tr = tones_dataset(per_class=150, seed=1)
    xt_te, yt_te = tones_dataset(per_class=40, seed=2)  # freshly rendered clips never seen in training
    model = FeatureClassifier(in_channels=1, image_size=32, num_classes=NUM_CLASSES, feature_dim=64, width=16)
    t0 = time.time()
    train(model, xt_tr, yt_tr, args.tones_epochs, gen, lambda x: augment(x, gen, 0.04, 0.03, 0.05))
    wall = time.time() - t0
    acc_t = accuracy(model, xt_te, yt_te)
    folder = out / "tones-features"
    model.save_pretrained(folder, safe_serialization=True)
    idx = torch.arange(len(xt_te)).view(NUM_CLASSES, -1)[:, :4].t().reshape(-1)
    save_grid(xt_te[idx], folder / "samples.png", nrow=NUM_CLASSES, scale=4)
    write_card(
        folder,
        "tones-features",
        {
            "What": "`diffprune.evaluation.metrics.feature_networks.FeatureClassifier` trained to classify the ten synthetic melody "
            "classes from their 32x32 mel spectrogram images. Its 64-d penultimate layer is the FID feature space for "
            "the tones-audio model.",
            "Data": "assets/training/tones_data.py: ten fixed pitch patterns (2-4 notes) with random transposition (+-1 "
            "semitone), tempo, onset, harmonics, loudness and noise, 8 kHz, rendered to images by diffusers `Mel` "
            f"(x_res 32, y_res 32, n_fft 512, hop 128). {len(xt_tr)} training clips (seed 1), {len(xt_te)} held-out "
            "clips (seed 2).",
            "Architecture": f"Same FeatureClassifier layout as digits-features with width 16, image_size 32. "
            f"Parameters: {count_params(model):,}.",
            "Training": f"{args.tones_epochs} epochs, batch 64, AdamW one-cycle lr 3e-3, seed {args.seed}; "
            f"wall time {wall:.0f} s on 1 CPU thread.",
            "Metrics": f"Held-out accuracy: **{acc_t * 100:.2f}%** ({len(xt_te)} clips).",
            "Samples": "`samples.png`: held-out mel images, one column per class (0..9 left to right).",
            "Reproduce": "```\n.venv/bin/python assets/training/train_feature_networks.py --out assets/models\n```",
            "Size": f"{folder_size_mb(folder):.2f} MB (safetensors).",
        },
    )
    print(f"tones-features: held-out accuracy {acc_t:.4f}, {wall:.0f}s")


if __name__ == "__main__":
    main()
