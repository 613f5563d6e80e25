"""Prompt lists: reading a prompt file, and the default prompts for a pipeline (calibration and evaluation).

Default order: the pipeline folder's own calibration_prompts.txt (the bundled digits-t2i ships one), the
bundled digits prompts for a digits model named by its short name, generic text-to-audio prompts for audio
pipelines, class labels spread over a class-conditional model's classes (by name where the pipeline has
names), else assets/prompts/calibration.txt (70 varied text-to-image prompts written for diffprune).
"""

from __future__ import annotations

from pathlib import Path

from diffprune.errors import DiffpruneError
from diffprune.models import zoo
from diffprune.models.generation import (
    CLASS_CONDITIONAL_IMAGE,
    TEXT_TO_AUDIO,
    denoiser_num_classes,
    pipeline_family,
    takes_prompts,
)

GENERIC_AUDIO_PROMPTS = ("a dog barking", "rain on a window", "a piano playing a slow melody", "birds singing")
DEFAULT_CLASS_LABELS = 32  # class-conditional defaults: this many classes, evenly spread over the model's


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per non-empty line; lines starting with '#' are comments."""
    path = Path(path)
    if not path.is_file():
        raise DiffpruneError(f"prompt file {path} does not exist; pass a text file with one prompt per line")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise DiffpruneError(f"prompt file {path} holds no prompts; write one prompt per line")
    return prompts


def default_prompts(pipeline, model_name: str | None = None) -> list[str] | None:
    """None for pipelines that take no prompts."""
    if not takes_prompts(pipeline):
        return None
    folder = Path(str(getattr(pipeline.config, "_name_or_path", "") or ""))
    own = folder / "calibration_prompts.txt"
    if own.is_file():
        return read_prompts(own)
    if zoo.prompts_file_for(model_name) is not None:
        return read_prompts(zoo.prompts_file_for(model_name))
    if pipeline_family(pipeline) == TEXT_TO_AUDIO:
        return list(GENERIC_AUDIO_PROMPTS)
    if pipeline_family(pipeline) == CLASS_CONDITIONAL_IMAGE:
        return default_class_labels(pipeline)
    return read_prompts(zoo.assets_dir() / "prompts" / "calibration.txt")


def default_class_labels(pipeline) -> list[str]:
    """DEFAULT_CLASS_LABELS classes evenly spread over the model's, by the pipeline's shortest name for each where
    it has names (DiT's ImageNet labels: "tench" rather than "Tinca tinca"), else by id."""
    num_classes = denoiser_num_classes(pipeline) or 1
    stride = max(1, num_classes // DEFAULT_CLASS_LABELS)
    names = {}
    for name, class_id in (getattr(pipeline, "labels", None) or {}).items():
        if int(class_id) not in names or len(name) < len(names[int(class_id)]):
            names[int(class_id)] = name
    return [names.get(class_id, str(class_id)) for class_id in range(0, num_classes, stride)][:DEFAULT_CLASS_LABELS]
