"""Denoiser families: one module per architecture, each declaring what diffprune needs to know about it
(registry.py says what a family declares). The rest of diffprune asks here:

    family_of(model)                 the model's Family, or a one-line error naming why it cannot be pruned
    is_diffusion_transformer(model)  whether its units are blocks of stacks (else a UNet's structural units)
    example_inputs(model, ...)       one denoiser call as a pipeline makes it, on the model's device and dtype
    require(model, operation)        raises the family's one-line refusal when it cannot do `operation`

Adding a family is one module here, listed in FAMILY_MODULES (docs/methods.md, "Adding a family").

May import: torch, diffusers and the package root's shared modules (errors, devices, tensors).
"""

from __future__ import annotations

from importlib import import_module

import torch

from diffprune.devices import Placement, place
from diffprune.errors import DiffpruneError
from diffprune.families.registry import (
    BRANCH_CUTS,
    CALIBRATION,
    DEPTH,
    IMAGE_TEXT,
    LOSSES,
    ONE_STREAM,
    OPERATIONS,
    REPLACE,
    TEXT_IMAGE,
    UNITS,
    Family,
    Stack,
    lookup,
    refusal,
    refused,
    registered,
)
from diffprune.families.registry import require as require_family

# Every family module; each registers its classes when imported (on first lookup, so `diffprune --help` stays fast).
FAMILY_MODULES = (
    "unet",
    "pixart",
    "dit",
    "sd3",
    "flux",
    "sana",
    "qwenimage",
    "flux2",
    "chroma",
    "lumina2",
    "cogview4",
    "hidream",
    "stable_audio",
    "auraflow",
    "bria",
    "longcat_image",
    "ovis_image",
    "cogview3plus",
    "hunyuanimage",
    "krea2",
    "ernie_image",
    "ideogram4",
    "glm_image",
    "nucleusmoe_image",
    "z_image",
    "bria_fibo",
    "ace_step",
    "unsupported",
)
_loaded = False


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in FAMILY_MODULES:
            import_module(f"{__name__}.{module}")
        _loaded = True


def find_family(model_or_class) -> Family | None:
    """The family of a denoiser (instance or class), or None."""
    _load_all()
    return lookup(model_or_class)


def family_of(model_or_class) -> Family:
    """The family of a denoiser, or a one-line error saying why it cannot be pruned."""
    family = find_family(model_or_class)
    if family is None:
        raise DiffpruneError(refusal(model_or_class))
    return family


def is_diffusion_transformer(model) -> bool:
    family = find_family(model)
    return family is not None and family.is_transformer


def require(model, operation: str, pipeline=None) -> Family:
    """The model's family, after checking it can do `operation` (one of OPERATIONS)."""
    family = family_of(model)
    require_family(family, operation, model, pipeline)
    return family


def all_families() -> dict[type, Family]:
    """{denoiser class: family} of every registered family."""
    _load_all()
    return registered()


def refused_classes() -> dict[str, str]:
    """{class name: why} of the denoiser classes diffprune refuses on purpose."""
    _load_all()
    return refused()


def example_inputs(
    model,
    batch_size: int = 1,
    text_length: int | None = None,
    latent_size: int | None = None,
    generator: torch.Generator | None = None,
    placement: Placement | None = None,
) -> dict:
    """Keyword arguments for `model(**inputs)`: one call as its pipeline makes it (text length and latent size
    from the pipeline where given, else the family's defaults), random values drawn on the CPU (a seed gives the
    same inputs on every device), placed on the model's device and dtype (or `placement`)."""
    inputs = family_of(model).example_inputs(model, batch_size, text_length, latent_size, generator)
    return place(inputs, placement or model)


__all__ = [
    "BRANCH_CUTS",
    "CALIBRATION",
    "DEPTH",
    "FAMILY_MODULES",
    "IMAGE_TEXT",
    "LOSSES",
    "ONE_STREAM",
    "OPERATIONS",
    "REPLACE",
    "TEXT_IMAGE",
    "UNITS",
    "Family",
    "Stack",
    "all_families",
    "example_inputs",
    "family_of",
    "find_family",
    "is_diffusion_transformer",
    "refused_classes",
    "require",
]
