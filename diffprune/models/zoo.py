"""Bundled small trained models, found by short name (e.g. "digits-ddpm").

Why: tests, docs and the CLI need real trained models without network access; they ship under the
repository's assets/models (see each folder's README.md model card, and assets/training/ for the scripts
that reproduce them). This module only maps names to folders; it imports nothing heavy so the CLI
stays fast. Set DIFFPRUNE_ASSETS to use another assets folder (one holding models/).
"""

from __future__ import annotations

import os
from pathlib import Path

from diffprune.errors import DiffpruneError

# short name -> folder under <assets>/models, with the stock class that loads it.
BUNDLED: dict[str, str] = {
    "digits-ddpm": "digits-ddpm",  # diffusers DDPMPipeline, 16x16 grayscale digits
    "digits-t2i": "digits-t2i",  # diffusers StableDiffusionPipeline, 16x16 digits from prompts
    "digits-sd3": "digits-sd3",  # diffusers StableDiffusion3Pipeline (diffusion transformer), 16x16 digits
    "tones-audio": "tones-audio",  # diffusers AudioDiffusionPipeline, 32x32 mels at 8 kHz
    "digits-clip": "digits-clip",  # transformers CLIPModel + CLIPProcessor
    "digits-features": "digits-features",  # diffprune.evaluation.metrics.feature_networks.FeatureClassifier (FID space, digits)
    "tones-features": "tones-features",  # diffprune.evaluation.metrics.feature_networks.FeatureClassifier (FID space, tones)
}
# The bundled pipelines (what `diffprune prune`, `eval` and `units` take by short name), and what evaluates them:
# the FID feature network trained on each domain (by name prefix), the CLIP that knows the text-to-image prompts,
# and the prompt file of the digits domain.
PIPELINES = ("digits-t2i", "digits-sd3", "digits-ddpm", "tones-audio")
DOMAIN_FEATURE_NETWORKS = {"digits-": "digits-features", "tones-": "tones-features"}
CLIP_MODELS = {"digits-t2i": "digits-clip", "digits-sd3": "digits-clip"}
DIGITS_PROMPTS = "digits.txt"  # under <assets>/prompts, for models named digits*


def assets_dir() -> Path:
    """The assets folder: $DIFFPRUNE_ASSETS if set, else <repository>/assets."""
    env = os.environ.get("DIFFPRUNE_ASSETS")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "assets"


def models_dir() -> Path:
    """Folder that holds one sub-folder per bundled model."""
    return assets_dir() / "models"


def list_bundled() -> list[str]:
    """Short names of all bundled models, sorted."""
    return sorted(BUNDLED)


def is_bundled(name: str) -> bool:
    """True if `name` is a bundled model's short name (not whether its files are present)."""
    return isinstance(name, str) and name in BUNDLED


def feature_networks() -> list[str]:
    """Short names of the bundled FID feature networks."""
    return sorted(set(DOMAIN_FEATURE_NETWORKS.values()))


def feature_network_for(name: str | None) -> str | None:
    """The bundled FID feature network of a bundled model's domain (its name's prefix), else None."""
    if not (name and is_bundled(name)):
        return None
    for prefix, features in DOMAIN_FEATURE_NETWORKS.items():
        if name.startswith(prefix) and name != features:
            return features
    return None


def clip_model_for(name: str | None) -> str | None:
    """The bundled CLIP that scores a bundled text-to-image model's samples, else None."""
    return CLIP_MODELS.get(name) if name else None


def prompts_file_for(name: str | None) -> Path | None:
    """The bundled prompt file for a model named for the digits domain, else None."""
    return assets_dir() / "prompts" / DIGITS_PROMPTS if name is not None and name.startswith("digits") else None


def bundled_path(name: str) -> Path:
    """Folder of a bundled model, ready for `from_pretrained`.

    Raises DiffpruneError for an unknown name or a missing folder, with a one-line message that
    says what to do.
    """
    if not is_bundled(name):
        raise DiffpruneError(f"unknown bundled model {name!r}; known: {', '.join(list_bundled())}")
    path = models_dir() / BUNDLED[name]
    if not path.is_dir():
        raise DiffpruneError(
            f"bundled model {name!r} is missing at {path}; set DIFFPRUNE_ASSETS or re-run its script in assets/training/ to rebuild it"
        )
    return path
