"""Frechet distance between two image sets with torchmetrics' FrechetInceptionDistance.

The feature space is either the standard InceptionV3 (torch-fidelity; its weights are downloaded unless a
file is given, so offline machines pass --fid-weights) or a domain network: a bundled FeatureClassifier by
short name (models/zoo.py) or a folder that FeatureClassifier.from_pretrained loads.
InceptionV3 on 16x16 digits or 32x32 spectrograms measures mostly upsampling artefacts, which is why the
bundled models default to their own feature networks.
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffprune.errors import DiffpruneError, first_line
from diffprune.evaluation.metrics.feature_networks import FeatureClassifier
from diffprune.models import zoo

INCEPTION = "inception"
INCEPTION_FEATURE_DIM = 2048
UPDATE_CHUNK = 64  # images per feature-network call, to bound memory
_OFFLINE_HINT = (
    "pass `fid_weights` FILE (torch-fidelity's pt_inception-2015-12-05 weights) or "
    f"`fid_features` {'|'.join(zoo.feature_networks())}|FOLDER"
)


def default_feature_network(*model_names: str | None) -> str:
    """The bundled feature network matching the first bundled model name given, else InceptionV3."""
    return next((zoo.feature_network_for(name) for name in model_names if zoo.feature_network_for(name)), INCEPTION)


def _fid_class():
    try:
        # deferred: a broken torch-fidelity fails here as a one-line error, and only InceptionV3 FID needs it
        from torchmetrics.image.fid import FrechetInceptionDistance
    except Exception as error:  # a half-installed torch-fidelity (e.g. without torchvision) breaks the import
        raise DiffpruneError(
            f"torchmetrics' FID cannot be imported ({type(error).__name__}: {first_line(error)}); "
            "repair or uninstall torch-fidelity"
        ) from error
    return FrechetInceptionDistance


def load_feature_network(features: str | torch.nn.Module) -> torch.nn.Module:
    """A custom feature network from a module, a bundled short name or a FeatureClassifier folder."""
    if isinstance(features, torch.nn.Module):
        return features.eval()
    if zoo.is_bundled(features):
        return FeatureClassifier.from_pretrained(zoo.bundled_path(features)).eval()
    folder = Path(features).expanduser()
    if not folder.is_dir():
        raise DiffpruneError(
            f"unknown FID feature network {features!r}; pass 'inception', a bundled name "
            f"({', '.join(zoo.feature_networks())}) or a folder saved with FeatureClassifier.save_pretrained"
        )
    try:
        return FeatureClassifier.from_pretrained(folder).eval()
    except (OSError, ValueError) as error:
        raise DiffpruneError(f"could not load a FeatureClassifier from {folder}: {first_line(error)}") from error


class FrechetDistance:
    """FID between a real (reference) image set and a generated one, in one feature space.

    Build it once and call it for several pairs: the feature network (InceptionV3 included) loads only once.
    """

    def __init__(self, features: str | torch.nn.Module = INCEPTION, weights_path: str | None = None, device="cpu"):
        fid_class = _fid_class()
        self.uses_inception = isinstance(features, str) and features == INCEPTION
        if self.uses_inception:
            self.description = f"inception-v3 ({INCEPTION_FEATURE_DIM})" + (
                f" from {weights_path}" if weights_path else ""
            )
            self.metric = self._inception_metric(fid_class, weights_path)
        else:
            network = load_feature_network(features)
            self.description = features if isinstance(features, str) else type(features).__name__
            self.metric = fid_class(feature=network, normalize=False)
        self.metric = self.metric.to(device)

    @staticmethod
    def _inception_metric(fid_class, weights_path):
        if weights_path is not None and not Path(weights_path).is_file():
            raise DiffpruneError(f"`fid_weights` {weights_path} is not a file; {_OFFLINE_HINT}")
        try:
            return fid_class(
                feature=INCEPTION_FEATURE_DIM, normalize=False, feature_extractor_weights_path=weights_path
            )
        except ModuleNotFoundError as error:
            raise DiffpruneError(
                f"FID with InceptionV3 needs torch-fidelity (pip install 'diffprune[fid-inception]'); or {_OFFLINE_HINT}"
            ) from error
        except Exception as error:  # no network to download the weights, or an unreadable weights file
            raise DiffpruneError(
                f"InceptionV3 weights could not be loaded ({first_line(error)}); {_OFFLINE_HINT}"
            ) from error

    def __call__(self, real_images: torch.Tensor, generated_images: torch.Tensor) -> float:
        """FID of two uint8 [N, C, H, W] batches; each needs at least 2 images (a covariance needs 2)."""
        if len(real_images) < 2 or len(generated_images) < 2:
            raise DiffpruneError(
                f"FID needs at least 2 images on each side (got {len(real_images)} and {len(generated_images)}); "
                "raise `num_samples`"
            )
        self.metric.reset()
        with torch.no_grad():
            for images, real in ((real_images, True), (generated_images, False)):
                for start in range(0, len(images), UPDATE_CHUNK):
                    self.metric.update(self._prepare(images[start : start + UPDATE_CHUNK]), real=real)
            value = float(self.metric.compute())
        # With fewer samples than feature dimensions the covariances are singular; the matrix square root
        # can then come out a hair below zero for identical sets.
        return max(value, 0.0)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.uses_inception and images.shape[1] == 1:  # InceptionV3 expects RGB
            images = images.repeat(1, 3, 1, 1)
        return images.to(self.metric.device)
