"""Which component of a pipeline denoises: `unet` in UNet pipelines, `transformer` in diffusion-transformer
ones (PixArt, SD3, FLUX, Sana, DiT). Code that works on either asks here instead of reading `pipeline.unet`."""

from __future__ import annotations

from diffprune.errors import DiffpruneError

DENOISER_COMPONENTS = ("unet", "transformer")


def denoiser_name(pipeline) -> str:
    for name in DENOISER_COMPONENTS:
        if getattr(pipeline, name, None) is not None:
            return name
    raise DiffpruneError(
        f"{type(pipeline).__name__} has no UNet or transformer to prune (its components: "
        f"{', '.join(getattr(pipeline, 'components', {}))})"
    )


def denoiser_of(pipeline):
    """The pipeline's UNet or diffusion transformer."""
    return getattr(pipeline, denoiser_name(pipeline))
