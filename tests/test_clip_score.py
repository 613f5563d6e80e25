"""CLIP score through torchmetrics' CLIPScore with any CLIP checkpoint, despite transformers 5's outputs."""

import pytest
import torch
from tiny_evaluation_models import tiny_clip

from diffprune.errors import DiffpruneError
from diffprune.evaluation.metrics.clip_score import ClipScorer, FeaturesAsTensors, default_clip_model, load_clip
from diffprune.models import zoo


def test_score_is_torchmetrics_formula_on_the_projected_features():
    model, processor = tiny_clip()
    scorer = ClipScorer("tiny", model=model, processor=processor)
    images = torch.randint(0, 256, (3, 1, 20, 20), dtype=torch.uint8)  # grayscale: repeated to RGB
    prompts = ["a one", "a two", "a three"]
    value = scorer(images, prompts)
    wrapped = FeaturesAsTensors(model)
    with torch.no_grad():
        pixels = processor(images=list(images.repeat(1, 3, 1, 1)), return_tensors="pt")["pixel_values"]
        tokens = processor(text=prompts, return_tensors="pt", padding=True)
        image_features = wrapped.get_image_features(pixels)
        text_features = wrapped.get_text_features(tokens["input_ids"], tokens["attention_mask"])
    assert isinstance(image_features, torch.Tensor) and image_features.shape == (3, 8)
    cosine = torch.nn.functional.cosine_similarity(image_features, text_features, dim=-1)
    assert float(scorer.metric.score) == pytest.approx(float(100 * cosine.sum()), rel=1e-4, abs=1e-3)
    assert value == pytest.approx(max(float(100 * cosine.mean()), 0.0), rel=1e-4, abs=1e-3)


def test_one_prompt_per_image():
    model, processor = tiny_clip()
    with pytest.raises(DiffpruneError, match="one prompt per image"):
        ClipScorer("tiny", model=model, processor=processor)(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), ["a"])


def test_loading_failures_are_one_line_errors(tmp_path):
    with pytest.raises(DiffpruneError, match="could not load CLIP model") as error:
        load_clip(str(tmp_path))
    assert "`clip_model`" in str(error.value) and "\n" not in str(error.value)


def test_defaults():
    assert default_clip_model("digits-t2i") == "digits-clip"
    assert default_clip_model(None, "org/model") == "openai/clip-vit-large-patch14"


def test_digits_clip_ranks_the_matching_prompt_first():
    if not (zoo.models_dir() / "digits-clip").is_dir():
        pytest.skip("assets/models/digits-clip is not built yet")
    from sklearn.datasets import load_digits

    from diffprune.models.prompts import read_prompts

    digits = load_digits()
    prompts = read_prompts(zoo.assets_dir() / "prompts" / "digits.txt")[:10]  # line d describes digit d
    scorer = ClipScorer("digits-clip")
    wins = 0
    for digit in range(10):
        picks = torch.from_numpy(digits.images[digits.target == digit][:2]).float()
        images = torch.nn.functional.interpolate(picks[:, None] / 16, size=16, mode="bilinear")
        images = (images * 255).round().to(torch.uint8)
        matching = scorer(images, [prompts[digit]] * 2)
        mismatched = scorer(images, [prompts[(digit + 5) % 10]] * 2)
        wins += matching > mismatched
    assert wins >= 9, f"the matching prompt scored higher for only {wins} of 10 digits"
