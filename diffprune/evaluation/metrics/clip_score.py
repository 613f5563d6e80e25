"""CLIP score (agreement of images with their prompts) with torchmetrics' CLIPScore and any CLIP checkpoint.

torchmetrics 1.9 only takes a few hub ids by name, and it calls `get_text_features` / `get_image_features`
expecting tensors, which transformers 5 no longer returns (it returns output objects whose `pooler_output`
holds the projected features). So we hand CLIPScore a loader (which it accepts) that yields a thin wrapper
turning those outputs back into tensors; the score itself stays torchmetrics' (100 * cosine, averaged,
floored at 0).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from diffprune.errors import DiffpruneError, first_line
from diffprune.models import zoo

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
UPDATE_CHUNK = 32


def default_clip_model(*model_names: str | None) -> str:
    """The bundled CLIP of the first bundled text-to-image model named (models/zoo.py), else DEFAULT_CLIP_MODEL."""
    return next((zoo.clip_model_for(name) for name in model_names if zoo.clip_model_for(name)), DEFAULT_CLIP_MODEL)


def features_tensor(output) -> torch.Tensor:
    """The projected features, whether a transformers version returned a tensor or an output object."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class FeaturesAsTensors(nn.Module):
    """A CLIP-like model whose get_*_features return tensors, as torchmetrics expects."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def config(self):  # torchmetrics reads text_config.max_position_embeddings to truncate long prompts
        return self.model.config

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        return features_tensor(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        return features_tensor(self.model.get_text_features(*args, **kwargs))


def resolve_pretrained_location(model_name_or_path: str) -> str:
    """A bundled short name (models/zoo.py) becomes its folder; folders and hub ids pass through."""
    return str(zoo.bundled_path(model_name_or_path)) if zoo.is_bundled(model_name_or_path) else model_name_or_path


def load_clip(model_name_or_path: str):
    """(CLIPModel, CLIPProcessor) from a hub id, a local folder or a bundled short name."""
    # deferred: transformers takes seconds to import, and only CLIP scoring needs it
    from transformers import CLIPModel, CLIPProcessor

    location = resolve_pretrained_location(model_name_or_path)
    try:
        return CLIPModel.from_pretrained(location).eval(), CLIPProcessor.from_pretrained(location)
    except (OSError, ValueError) as error:
        raise DiffpruneError(
            f"could not load CLIP model {model_name_or_path!r} ({first_line(error)}); "
            "pass `clip_model` with a folder holding a CLIPModel and CLIPProcessor"
        ) from error


class ClipScorer:
    """Mean CLIP score of images against their prompts. Build once (loads the model), call many times."""

    def __init__(self, model_name_or_path: str = DEFAULT_CLIP_MODEL, model=None, processor=None, device="cpu"):
        # deferred: it imports transformers (seconds), which only CLIP scoring needs
        from torchmetrics.multimodal.clip_score import CLIPScore

        if model is None or processor is None:
            model, processor = load_clip(model_name_or_path)
        self.description = model_name_or_path
        self.device = torch.device(device)
        wrapped = FeaturesAsTensors(model).to(self.device)
        self.metric = CLIPScore(model_name_or_path=lambda: (wrapped, processor))

    def __call__(self, images: torch.Tensor, prompts: list[str]) -> float:
        """images: uint8 [N, C, H, W] (grayscale is repeated to RGB); one prompt per image."""
        if len(images) != len(prompts):
            raise DiffpruneError(f"CLIP score needs one prompt per image (got {len(prompts)} for {len(images)})")
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        self.metric.reset()
        with torch.no_grad(), warnings.catch_warnings():
            # torchmetrics pads without truncation; tokenizers that carry a max_length warn about it on every call
            warnings.filterwarnings("ignore", message=".*max_length.*is ignored when.*padding")
            for start in range(0, len(images), UPDATE_CHUNK):
                chunk = images[start : start + UPDATE_CHUNK].to(self.device)
                self.metric.update(list(chunk), prompts[start : start + UPDATE_CHUNK])
            return float(self.metric.compute())
