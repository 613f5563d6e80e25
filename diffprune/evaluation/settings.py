"""What an evaluation measures: the metrics that apply to each family, and EvaluationSettings (samples,
steps, seeds, feature networks, latency settings), checked when made."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from diffprune.devices import resolve_device, torch_dtype
from diffprune.errors import DiffpruneError
from diffprune.evaluation.latency import LatencySettings
from diffprune.models.generation import (
    AUDIO_DIFFUSION,
    CLASS_CONDITIONAL_IMAGE,
    DEFAULT_STEPS,
    TEXT_TO_AUDIO,
    TEXT_TO_IMAGE,
    UNCONDITIONAL_IMAGE,
)
from diffprune.models.real_images import check_real_images_folder

METRICS = ("fid", "clip", "clap", "latency", "macs")


QUALITY_METRICS = {
    TEXT_TO_IMAGE: ("fid", "clip"),
    CLASS_CONDITIONAL_IMAGE: ("fid",),  # class labels are no captions for CLIP
    UNCONDITIONAL_IMAGE: ("fid",),
    AUDIO_DIFFUSION: ("fid",),  # on the mel images the pipeline produces
    TEXT_TO_AUDIO: ("fid", "clap"),  # FID on mel images rendered from the audio
}


def parse_metrics(metrics) -> tuple[str, ...] | None:
    """'fid,clip' or an iterable of names -> a validated tuple; None stays None (the family's defaults)."""
    if metrics is None:
        return None
    names = [name.strip().lower() for name in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    names = [name for name in names if name]
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise DiffpruneError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    if not names:
        raise DiffpruneError(f"no metrics given; choose from {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


@dataclass
class EvaluationSettings:
    """Everything that decides the numbers; validated on construction so mistakes surface before any work."""

    metrics: tuple[str, ...] | str | None = None  # None: the family's quality metrics plus latency and macs
    num_samples: int = 16
    seed: int = 0
    prompts: list[str] | None = None  # text families; None: bundled digits prompts or a generic list
    num_inference_steps: int = DEFAULT_STEPS
    guidance_scale: float | None = None  # None: each pipeline's own default
    generation_batch_size: int = 8
    real_images: str | None = None  # folder of real samples for FID against data
    fid_features: object = None  # "inception", a bundled feature network, a folder or a module; None: by model
    fid_weights: str | None = None  # InceptionV3 weights file for machines without internet
    clip_model: str | None = None  # hub id, folder or bundled name; None: the bundled model's CLIP, else openai
    clap_model: str | None = None  # hub id or folder; None: laion/clap-htsat-unfused
    device: str | None = None  # None: cuda when a GPU is visible, else cpu (devices.resolve_device)
    dtype: str | None = None  # fp32, fp16 (GPU), bf16; None keeps the pipelines' dtype
    latency: LatencySettings | dict | None = None  # None: defaults, timing calls with num_inference_steps
    max_grid_rows: int = 16  # compare: rows shown in the grid (all samples count for the metrics)
    show_progress: bool = True

    def __post_init__(self):
        self.metrics = parse_metrics(self.metrics)
        if self.latency is None:
            self.latency = LatencySettings(num_inference_steps=self.num_inference_steps)
        elif isinstance(self.latency, dict):
            self.latency = LatencySettings(**{"num_inference_steps": self.num_inference_steps, **self.latency})
        if self.num_samples < 1:
            raise DiffpruneError("`num_samples` must be at least 1")
        if self.metrics and "fid" in self.metrics and self.num_samples < 2:
            raise DiffpruneError("FID needs at least 2 samples per model; raise `num_samples`")
        if self.real_images is not None:
            self.real_images = str(check_real_images_folder(self.real_images))
        if self.fid_weights is not None and not Path(self.fid_weights).is_file():
            raise DiffpruneError(f"`fid_weights` {self.fid_weights} is not a file; pass the InceptionV3 weights file")
        self.device = resolve_device(self.device)
        torch_dtype(self.dtype, self.device)
        if self.generation_batch_size < 1:
            raise DiffpruneError("`generation_batch_size` must be at least 1")

    def as_dict(self) -> dict:
        settings = asdict(self)
        if isinstance(self.fid_features, torch.nn.Module):
            settings["fid_features"] = type(self.fid_features).__name__
        return settings


def metrics_for(family: str, requested, has_comparison: bool) -> tuple[str, ...]:
    """The requested metrics after checking they apply; None picks the family's defaults."""
    if requested is None:
        quality = [m for m in QUALITY_METRICS[family] if m != "fid" or has_comparison]
        return tuple(quality) + ("latency", "macs")
    for metric in requested:
        if metric in ("fid", "clip", "clap") and metric not in QUALITY_METRICS[family]:
            hint = {"clip": "it needs a text-to-image pipeline", "clap": "it needs a text-to-audio pipeline"}[metric]
            raise DiffpruneError(f"metric {metric!r} does not apply to {family} models: {hint}")
    if "fid" in requested and not has_comparison:
        raise DiffpruneError("FID compares two sample sets: pass `reference` (a model) or `real_images` (a folder)")
    return requested
