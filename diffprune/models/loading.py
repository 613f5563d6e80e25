"""Loading a pipeline from a local folder, a hub id or a bundled short name, with one-line errors; swapping its
components or their precision without changing it in place."""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import DiffusionPipeline

from diffprune.errors import DiffpruneError, first_line
from diffprune.families import all_families
from diffprune.models import zoo
from diffprune.models.saved_cuts import pruned_components
from diffprune.structure.denoiser import DENOISER_COMPONENTS


def resolve_model_path(path_or_name: str) -> str:
    """A bundled short name becomes its folder; a local path must be a diffusers pipeline folder; anything
    else that looks like a hub id ("org/name") is passed on to diffusers."""
    if zoo.is_bundled(path_or_name):
        return str(zoo.bundled_path(path_or_name))
    path = Path(path_or_name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DiffpruneError(f"{path} is a file; pass a diffusers pipeline folder (with model_index.json)")
        if not (path / "model_index.json").exists():
            hint = (
                " (it holds a single model; pass the pipeline folder above it)"
                if (path / "config.json").exists()
                else ""
            )
            raise DiffpruneError(f"{path} is not a diffusers pipeline folder: no model_index.json{hint}")
        return str(path)
    looks_like_hub_id = path_or_name.count("/") == 1 and not path_or_name.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        known = ", ".join(zoo.list_bundled())
        raise DiffpruneError(f"no such folder: {path_or_name} (bundled models: {known}; or a hub id like org/name)")
    return path_or_name


def load_pipeline(path_or_name: str, device: str | None = None, torch_dtype=None):
    """Load any diffusers pipeline that has a UNet or a diffusion transformer; errors name what to do instead."""
    location = resolve_model_path(path_or_name)
    try:
        # A cut saved with its own code is built by diffprune's classes, so the folder's copy never runs.
        components = {**left_out_components(location), **pruned_components(location, torch_dtype)}
        pipeline = DiffusionPipeline.from_pretrained(location, torch_dtype=torch_dtype, **components)
    except (OSError, ValueError, json.JSONDecodeError) as error:
        raise DiffpruneError(f"could not load pipeline {path_or_name!r}: {first_line(error)}") from error
    check_has_denoiser(pipeline)
    if device is not None:
        pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def left_out_components(location: str) -> dict:
    """{name: None} for the components a folder was saved without (model_index.json says [null, null], as for
    SD3 saved with text_encoder_3=None to drop T5): diffusers saves such folders but will not load them unless
    they are named again."""
    index = DiffusionPipeline.load_config(location)
    return {name: None for name, entry in index.items() if isinstance(entry, list) and entry == [None, None]}


def supported_denoisers() -> list[str]:
    """The denoiser classes of the family registry, by name."""
    return sorted(cls.__name__ for cls in all_families())


def check_has_denoiser(pipeline) -> None:
    if all(getattr(pipeline, name, None) is None for name in DENOISER_COMPONENTS):
        raise DiffpruneError(
            f"{type(pipeline).__name__} has no UNet or transformer, so there is nothing to prune; diffprune "
            f"prunes pipelines whose denoiser is one of: {', '.join(supported_denoisers())}"
        )
