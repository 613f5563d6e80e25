"""Quality checks on the bundled judges and text models: the numbers the model cards claim.

Why: pruning results are only meaningful if the feature networks that measure them are accurate,
torchmetrics' FID accepts them, and the text-conditioned models actually follow prompts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from diffprune.evaluation.metrics.feature_networks import FeatureClassifier
from diffprune.models.zoo import bundled_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "assets" / "training"))
from digit_prompts import WORDS, digit_of_prompt  # noqa: E402
from digits_data import digits_split, to_unit  # noqa: E402


@pytest.fixture(scope="module")
def judge():
    return FeatureClassifier.from_pretrained(bundled_path("digits-features")).eval()


@pytest.fixture(scope="module")
def held_out():
    _, _, x_te, y_te = digits_split()
    return to_unit(x_te, 16), torch.from_numpy(y_te)


def test_digits_features_accuracy(judge, held_out):
    x, y = held_out
    with torch.no_grad():
        acc = (judge.classify(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.97, acc


def test_features_accept_any_input_format(judge, held_out):
    x, _ = held_out
    x = x[:8]
    with torch.no_grad():
        ref = judge(x)
        rgb_big = judge(F.interpolate(x, size=32, mode="nearest").repeat(1, 3, 1, 1))
        as_uint8 = judge((x * 255).round().to(torch.uint8))
    assert ref.shape == (8, judge.num_features)
    assert torch.allclose(ref, as_uint8, atol=0.05)
    assert (judge.head(rgb_big).argmax(1) == judge.head(ref).argmax(1)).float().mean() >= 0.75


def test_torchmetrics_fid_accepts_module(judge, held_out):
    from torchmetrics.image.fid import FrechetInceptionDistance

    x, y = held_out
    fid = FrechetInceptionDistance(feature=judge, normalize=True)
    fid.update(x[:100].repeat(1, 3, 1, 1), real=True)
    fid.update(x[100:200].repeat(1, 3, 1, 1), real=False)
    same = fid.compute().item()
    fid2 = FrechetInceptionDistance(feature=judge, normalize=True)
    fid2.update(x[:100], real=True)
    fid2.update(torch.rand(100, 1, 16, 16), real=False)  # noise is far from digits
    far = fid2.compute().item()
    assert 0 <= same < far, (same, far)

    fid3 = FrechetInceptionDistance(feature=judge)  # uint8 path
    fid3.update((x[:50] * 255).to(torch.uint8), real=True)
    fid3.update((x[50:100] * 255).to(torch.uint8), real=False)
    assert torch.isfinite(fid3.compute())


def test_tones_features_accuracy():
    pytest.importorskip("librosa")
    from tones_data import tones_dataset

    model = FeatureClassifier.from_pretrained(bundled_path("tones-features")).eval()
    x, y = tones_dataset(per_class=10, seed=123)
    with torch.no_grad():
        acc = (model.classify(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.9, acc


def test_prompt_file_names_one_digit_each():
    lines = (Path(__file__).resolve().parent.parent / "assets" / "prompts" / "digits.txt").read_text().splitlines()
    lines = [line for line in lines if line.strip()]
    assert len(lines) >= 64
    counts = torch.bincount(torch.tensor([digit_of_prompt(p) for p in lines]), minlength=10)
    assert counts.min() >= 5
    with pytest.raises(ValueError):
        digit_of_prompt("a three and a four")


def test_digits_t2i_follows_prompts(judge):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(bundled_path("digits-t2i"))
    pipe.set_progress_bar_config(disable=True)
    prompts = [f"a handwritten {w}" for w in WORDS]
    images = pipe(
        prompts,
        num_inference_steps=20,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    with torch.no_grad():
        pred = judge.classify(images).argmax(1).tolist()
    correct = sum(p == d for d, p in enumerate(pred))
    assert correct >= 8, pred


def test_digits_clip_ranks_matching_prompt_first(held_out):
    from transformers import CLIPModel, CLIPProcessor

    path = bundled_path("digits-clip")
    model = CLIPModel.from_pretrained(path).eval()
    proc = CLIPProcessor.from_pretrained(path)
    x, y = held_out
    idx = torch.stack([torch.nonzero(y == d).flatten()[0] for d in range(10)])
    from PIL import Image

    pil = [Image.fromarray((x[i, 0] * 255).round().byte().numpy()).convert("RGB") for i in idx]
    prompts = [f"a handwritten {w}" for w in WORDS]
    inputs = proc(
        text=prompts, images=pil, return_tensors="pt", padding="max_length", max_length=proc.tokenizer.model_max_length
    )
    with torch.no_grad():
        logits = model(**inputs).logits_per_image  # [image digit, prompt digit]
    correct = (logits.argmax(1) == torch.arange(10)).sum().item()
    assert correct >= 8, logits.argmax(1).tolist()
