"""The denoiser classes of diffusers' image and audio pipelines, found from diffusers itself, so a class a new
diffusers adds shows up in test_family_coverage.py.

Rule: every pipeline class in `diffusers.pipelines` whose call returns images or audio and no video (its output
dataclass has an `images`/`image` or `audios`/`audio` field and no `frames`/`video`/`videos` field; pipelines whose
call is not annotated are read from the output class their `__call__` builds), and of those, every component
annotated with a diffusers model class under one of DENOISER_ATTRIBUTES (the denoiser's name in every diffusers
pipeline; VAEs, text encoders, ControlNets, adapters and the stage-one priors of combined pipelines, `prior_prior`,
are left out). Excluded, and why: video pipelines (3D transformers and video UNets used only by them: LTX-2,
Wan, HunyuanVideo, CogVideoX, Mochi, Cosmos 3 Omni, Kandinsky 6, ...), pipelines that return no image or audio
(Kandinsky/Stable Cascade/Würstchen priors return image embeddings, Marigold returns depth or normals, LLaDA2 and
DiffusionGemma return text, RFD4 Proteina returns protein structures).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import typing
from functools import cache

DENOISER_ATTRIBUTES = (
    "transformer",
    "transformer_2",
    "unconditional_transformer",  # Ideogram 4's negative-prompt model
    "unet",
    "image_unet",
    "text_unet",
    "prior",  # unCLIP's prior (a denoiser of image embeddings)
    "decoder",
    "super_res_first",
    "super_res_last",
)
IMAGE_FIELDS, AUDIO_FIELDS, VIDEO_FIELDS = {"images", "image"}, {"audios", "audio"}, {"frames", "video", "videos"}


def _output_fields(pipeline_class) -> set[str]:
    from diffusers.utils import BaseOutput

    call = pipeline_class.__call__
    try:
        annotation = typing.get_type_hints(call).get("return")
    except Exception:  # an annotation naming something the module does not import
        annotation = None
    candidates = list(typing.get_args(annotation) or (annotation,))
    if not any(inspect.isclass(c) and issubclass(c, BaseOutput) for c in candidates):
        module = importlib.import_module(pipeline_class.__module__)
        try:
            source = inspect.getsource(call)
        except (OSError, TypeError):
            source = ""
        candidates = [getattr(module, name, None) for name in re.findall(r"\b(\w+Output)\(", source)]
    fields = set()
    for candidate in candidates:
        if inspect.isclass(candidate) and issubclass(candidate, BaseOutput):
            fields |= {field.name for field in dataclasses.fields(candidate)}
    return fields


def modality(pipeline_class) -> str | None:
    """ "image", "audio", "video", or None (embeddings, depth, text, ...)."""
    fields = _output_fields(pipeline_class)
    if fields & VIDEO_FIELDS:
        return "video"
    if fields & IMAGE_FIELDS:
        return "image"
    if fields & AUDIO_FIELDS:
        return "audio"
    return None


@cache
def pipeline_classes() -> tuple[type, ...]:
    import diffusers
    import diffusers.pipelines as pipelines

    found = []
    for info in pkgutil.walk_packages(pipelines.__path__, f"{pipelines.__name__}."):
        if not info.name.rsplit(".", 1)[-1].startswith("pipeline_"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and value.__module__ == info.name
                and issubclass(value, diffusers.DiffusionPipeline)
            ):
                found.append(value)
    return tuple(found)


@cache
def image_and_audio_denoisers() -> dict[type, tuple[str, ...]]:
    """{denoiser class: names of the image or audio pipelines that use it}."""
    from diffusers.models.modeling_utils import ModelMixin

    denoisers: dict[type, list[str]] = {}
    for pipeline_class in pipeline_classes():
        if modality(pipeline_class) not in ("image", "audio"):
            continue
        try:
            hints = typing.get_type_hints(pipeline_class.__init__)
        except Exception:
            hints = {n: p.annotation for n, p in inspect.signature(pipeline_class.__init__).parameters.items()}
        for attribute in DENOISER_ATTRIBUTES:
            for candidate in typing.get_args(hints.get(attribute)) or (hints.get(attribute),):
                if inspect.isclass(candidate) and issubclass(candidate, ModelMixin):
                    denoisers.setdefault(candidate, []).append(pipeline_class.__name__)
    return {cls: tuple(sorted(set(names))) for cls, names in denoisers.items()}
