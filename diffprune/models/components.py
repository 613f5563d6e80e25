"""New pipelines from old ones without changing them: the same components with the UNet (or others) swapped,
or converted to another precision."""

from __future__ import annotations

import inspect

import torch

from diffprune.devices import converted_copy, placement_of
from diffprune.structure.denoiser import denoiser_name, denoiser_of


def with_denoiser(pipeline, model):
    """A new pipeline of the same class sharing every component but its denoiser (UNet or transformer)."""
    return with_components(pipeline, {denoiser_name(pipeline): model})


def with_unet(pipeline, unet):
    """A new pipeline of the same class sharing every component but the UNet (the input is left untouched)."""
    return with_components(pipeline, {"unet": unet})


def with_components(pipeline, replacements: dict):
    """A new pipeline of the same class sharing every component but `replacements` ({name: component}).

    Init flags that live in the pipeline's config (requires_safety_checker) are passed on, so rebuilding a
    Stable Diffusion pipeline without a safety checker neither warns nor changes what is saved; so is the size a
    transformer pipeline draws by default (`default_sample_size`), which its __init__ would reset.
    """
    accepted = inspect.signature(type(pipeline).__init__).parameters
    flags = {k: v for k, v in dict(pipeline.config).items() if k in accepted and k not in pipeline.components}
    if "id2label" in accepted and class_names(pipeline):  # DiT keeps its class names outside its config
        flags["id2label"] = class_names(pipeline)
    rebuilt = type(pipeline)(**{**pipeline.components, **flags, **replacements})
    rebuilt.set_progress_bar_config(**getattr(pipeline, "_progress_bar_config", {}))
    if hasattr(pipeline, "default_sample_size"):  # transformer pipelines: the size a call draws by default
        rebuilt.default_sample_size = pipeline.default_sample_size
    return rebuilt


def class_names(pipeline) -> dict[str, str]:
    """{class id: "name, other name"} from a class-conditional pipeline's `labels` ({name: id}), the form its
    `id2label` argument takes; {} for pipelines without names."""
    grouped: dict[int, list[str]] = {}
    for name, class_id in (getattr(pipeline, "labels", None) or {}).items():
        grouped.setdefault(int(class_id), []).append(name)
    return {str(class_id): ", ".join(names) for class_id, names in sorted(grouped.items())}


def pipeline_in_dtype(pipeline, dtype: torch.dtype | None):
    """`pipeline` itself when it already runs in `dtype` (or dtype is None), else a new pipeline of the same
    class whose model components are converted copies: the caller's pipeline is never changed in place."""
    if dtype is None or placement_of(denoiser_of(pipeline)).dtype == dtype:
        return pipeline
    converted = {
        name: converted_copy(component, dtype)
        for name, component in pipeline.components.items()
        if isinstance(component, torch.nn.Module)
    }
    converted_pipeline = with_components(pipeline, converted)
    # Same source folder: default calibration prompts and labels are read from it.
    converted_pipeline.register_to_config(_name_or_path=getattr(pipeline.config, "_name_or_path", None))
    return converted_pipeline
