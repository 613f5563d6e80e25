"""A user folder of training images (and captions) as clean latents, instead of the original's own samples.

Images are read in file-name order, resized to the pipeline's pixel resolution and encoded the way the
pipeline's latents are made (VAE mean x scaling factor, VQ-VAE latents, or the pixels themselves).
Captions for text-conditioned pipelines: `captions.txt` (one line per image, in file-name order) or a
`NAME.txt` beside each `NAME.png`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diffprune.errors import DiffpruneError
from diffprune.models.real_images import IMAGE_SUFFIXES, check_real_images_folder
from diffprune.structure.denoiser import denoiser_of


def image_files(folder: str | Path) -> list[Path]:
    folder = check_real_images_folder(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DiffpruneError(
            f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); pass a folder of training images"
        )
    return files


def read_captions(files: list[Path]) -> list[str]:
    folder = files[0].parent
    shared = folder / "captions.txt"
    if shared.is_file():
        lines = [line.strip() for line in shared.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(lines) != len(files):
            raise DiffpruneError(
                f"{shared} has {len(lines)} captions for {len(files)} images; write one line per image"
            )
        return lines
    missing = [f.name for f in files if not f.with_suffix(".txt").is_file()]
    if missing:
        raise DiffpruneError(
            f"text-to-image training images need captions: add {folder / 'captions.txt'} or {missing[0]}'s .txt file"
        )
    return [f.with_suffix(".txt").read_text(encoding="utf-8").strip() for f in files]


def _autoencoder(pipeline):
    return getattr(pipeline, "vae", None) or getattr(pipeline, "vqvae", None)


def encode_images(pipeline, files: list[Path]) -> torch.Tensor:
    """Clean latents for these image files, in the layout and space of the pipeline's final latents: VAE mean
    minus shift_factor (SD3, FLUX) times scaling_factor, VQ-VAE latents, or pixels; FLUX's packed 2x2 tokens."""
    denoiser, autoencoder = denoiser_of(pipeline), _autoencoder(pipeline)
    packed = hasattr(pipeline, "_pack_latents")  # FLUX: its latents are 2x2 patches packed into tokens
    size = pipeline.default_sample_size if packed else denoiser.config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    channels = denoiser.config.in_channels
    if autoencoder is not None:
        factor = 2 ** (len(autoencoder.config.block_out_channels) - 1)
        height, width, channels = height * factor, width * factor, autoencoder.config.in_channels
    mode = "L" if channels == 1 else "RGB"
    pixels = np.stack([np.asarray(Image.open(f).convert(mode).resize((width, height), Image.BICUBIC)) for f in files])
    pixels = torch.from_numpy(pixels).float().div(127.5).sub(1)
    pixels = pixels[:, None] if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)
    parameter = next(denoiser.parameters())
    if autoencoder is None:
        return pixels.to(parameter.device, parameter.dtype)
    with torch.no_grad():
        pixels = pixels.to(next(autoencoder.parameters()).device, next(autoencoder.parameters()).dtype)
        encoded = autoencoder.encode(pixels)
        latents = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latents
        shift = getattr(autoencoder.config, "shift_factor", None) or 0.0
        latents = (latents - shift) * getattr(autoencoder.config, "scaling_factor", 1.0)
    if packed:
        latents = pipeline._pack_latents(latents, *latents.shape)
    return latents.to(parameter.device, parameter.dtype)
