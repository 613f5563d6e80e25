"""Prompt lists: reading a prompt file, and the default prompts for a pipeline (calibration and evaluation).

Default order: the pipeline folder's own calibration_prompts.txt (the bundled digits-t2i ships one), the
bundled digits prompts for a digits model named by its short name, generic text-to-audio prompts for audio
pipelines, else assets/prompts/calibration.txt (70 varied text-to-image prompts written for diffprune).
"""

from __future__ import annotations

from pathlib import Path

from diffprune.errors import DiffpruneError

GENERIC_AUDIO_PROMPTS = ("a dog barking", "rain on a window", "a piano playing a slow melody", "birds singing")


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
    from diffprune.models import zoo
    from diffprune.models.generation import TEXT_TO_AUDIO, pipeline_family, takes_prompts

    if not takes_prompts(pipeline):
        return None
    folder = Path(str(getattr(pipeline.config, "_name_or_path", "") or ""))
    own = folder / "calibration_prompts.txt"
    if own.is_file():
        return read_prompts(own)
    if model_name is not None and model_name.startswith("digits"):
        return read_prompts(zoo.assets_dir() / "prompts" / "digits.txt")
    if pipeline_family(pipeline) == TEXT_TO_AUDIO:
        return list(GENERIC_AUDIO_PROMPTS)
    return read_prompts(zoo.assets_dir() / "prompts" / "calibration.txt")
