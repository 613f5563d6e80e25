"""Sample-grid PNGs for the model cards.

Why: a person must be able to look at a card and see that the model draws digits (or spectrograms),
so grids are upscaled with nearest-neighbour to a visible size.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def save_grid(images: torch.Tensor, path, nrow: int = 8, scale: int = 4, pad: int = 1) -> None:
    """Save [N, C, H, W] images in [0, 1] as one upscaled PNG grid (C = 1 or 3)."""
    images = images.detach().float().clamp(0, 1).cpu()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    n, c, h, w = images.shape
    ncol = nrow
    nrows = (n + ncol - 1) // ncol
    canvas = torch.ones(c, nrows * (h + pad) + pad, ncol * (w + pad) + pad) * 0.5
    for i in range(n):
        r, col = divmod(i, ncol)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        canvas[:, y0 : y0 + h, x0 : x0 + w] = images[i]
    arr = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(arr)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
