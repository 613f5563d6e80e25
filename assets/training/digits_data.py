"""The scikit-learn 8x8 digits, shaped for the bundled models.

Why this file: every digits model (DDPM, feature classifier, CLIP, text-to-image) must see the
same images and the same fixed train/held-out split, otherwise held-out metrics would leak.
The dataset ships inside scikit-learn, so nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.2


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (train_images, train_labels, test_images, test_labels) as 8x8 floats in 0..16.

    The split is stratified and seeded so every script and test agrees on the held-out set.
    """
    data = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        data.images.astype(np.float32),
        data.target.astype(np.int64),
        test_size=HELD_OUT_FRACTION,
        random_state=SPLIT_SEED,
        stratify=data.target,
    )
    return x_tr, y_tr, x_te, y_te


def to_unit(images: np.ndarray, size: int) -> torch.Tensor:
    """8x8 images in 0..16 -> float tensor [N, 1, size, size] in [0, 1] (bilinear upsampling).

    Bilinear keeps the strokes smooth, which makes the upsampled digits look hand-drawn rather than blocky.
    """
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).unsqueeze(1) / 16.0
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0.0, 1.0)


def to_signed(images: np.ndarray, size: int) -> torch.Tensor:
    """Same as `to_unit` but scaled to [-1, 1], the range diffusion models are trained in."""
    return to_unit(images, size) * 2.0 - 1.0
