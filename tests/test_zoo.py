"""The bundled models load offline by short name with the stock classes and generate.

Why: the zoo is what makes the toolkit usable and testable without network; if a model stops
loading with plain diffusers/transformers `from_pretrained`, everything built on it breaks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffprune.errors import DiffpruneError
from diffprune.models.zoo import BUNDLED, bundled_path, is_bundled, list_bundled


def test_names_and_folders():
    assert list_bundled() == sorted(BUNDLED)
    for name in list_bundled():
        assert is_bundled(name)
        path = bundled_path(name)
        assert (path / "README.md").is_file(), f"{name} has no model card"
        assert not list(path.rglob("*.bin")) and not list(path.rglob("*.pt")), f"{name} has pickled weights"
        assert list(path.rglob("*.safetensors")), f"{name} has no safetensors weights"


def test_unknown_name_raises_one_line_error():
    assert not is_bundled("no-such-model")
    with pytest.raises(DiffpruneError) as err:
        bundled_path("no-such-model")
    msg = str(err.value)
    assert "\n" not in msg and "digits-ddpm" in msg


def test_assets_override(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFPRUNE_ASSETS", str(tmp_path))
    (tmp_path / "models" / "digits-ddpm").mkdir(parents=True)
    assert bundled_path("digits-ddpm") == tmp_path / "models" / "digits-ddpm"
    with pytest.raises(DiffpruneError):
        bundled_path("digits-t2i")  # known name, but missing in the override folder


def test_digits_ddpm_generates():
    from diffusers import DDPMPipeline

    pipe = DDPMPipeline.from_pretrained(bundled_path("digits-ddpm"))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.images.shape == (2, 16, 16, 1)
    assert np.isfinite(out.images).all()


def test_digits_t2i_generates():
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    path = bundled_path("digits-t2i")
    generic = DiffusionPipeline.from_pretrained(path)
    assert isinstance(generic, StableDiffusionPipeline)
    pipe = StableDiffusionPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a handwritten seven", num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pil"
    )
    assert out.images[0].size == (16, 16)


def test_tones_audio_generates():
    pytest.importorskip("librosa")
    from diffusers import AudioDiffusionPipeline

    pipe = AudioDiffusionPipeline.from_pretrained(bundled_path("tones-audio"))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=1, steps=3, generator=torch.Generator().manual_seed(0))
    assert out.images[0].size == (32, 32)
    audio = np.asarray(out.audios)
    assert audio.shape[0] == 1 and audio.shape[-1] > 1000 and np.isfinite(audio).all()


def test_digits_clip_loads_with_word_tokens():
    from transformers import CLIPModel, CLIPProcessor

    path = bundled_path("digits-clip")
    model = CLIPModel.from_pretrained(path)
    proc = CLIPProcessor.from_pretrained(path)
    toks = proc.tokenizer.convert_ids_to_tokens(proc.tokenizer("a handwritten seven")["input_ids"])
    assert toks == ["<|startoftext|>", "a</w>", "handwritten</w>", "seven</w>", "<|endoftext|>"]
    assert model.config.text_config.vocab_size == len(proc.tokenizer)


def test_feature_networks_load():
    from diffprune.evaluation.metrics.feature_networks import FeatureClassifier

    for name, size in (("digits-features", 16), ("tones-features", 32)):
        model = FeatureClassifier.from_pretrained(bundled_path(name)).eval()
        assert model.config.image_size == size
        with torch.no_grad():
            feats = model(torch.zeros(2, 3, 40, 40, dtype=torch.uint8))
        assert feats.shape == (2, model.num_features)
