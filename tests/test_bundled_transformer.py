"""The bundled diffusion transformer (digits-sd3) through the CLI as a user runs it: prune with a loss-based
criterion (blocks and the branches inside them), reload the cut with diffusers, evaluate it against the
original, distil it; a depth cut (whole blocks only) reloads with the stock class."""

import json

import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusion3Pipeline

from diffprune.cli import main
from diffprune.models.loading import load_pipeline
from diffprune.models.zoo import bundled_path

FAST = ["--num-samples", "3", "--inference-steps", "2", "--device", "cpu"]


def test_digits_sd3_loads_with_stock_diffusers_and_draws_digits():
    pipeline = StableDiffusion3Pipeline.from_pretrained(
        bundled_path("digits-sd3"), text_encoder_3=None, tokenizer_3=None
    )
    pipeline.set_progress_bar_config(disable=True)
    image = pipeline("a handwritten seven", num_inference_steps=3, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (16, 16)


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    out = tmp_path_factory.mktemp("sd3") / "cut"
    argv = ["prune", "digits-sd3", "--criterion", "output-loss", "--keep-macs", "0.7", "--out", str(out), *FAST]
    assert main(argv) == 0
    return out


def test_prune_cuts_units_and_the_cut_reloads_with_diffusers(cut):
    report = json.loads((cut / "pruning_report.json").read_text())
    assert report["denoiser"]["class"] == "SD3Transformer2DModel"
    assert 0.6 < report["kept_fraction"]["macs"] <= 0.7  # blocks and branches meet the budget closely
    assert all(name.startswith("transformer_blocks.") for name in report["removed_units"])
    mine = load_pipeline(str(cut))
    theirs = DiffusionPipeline.from_pretrained(cut, trust_remote_code=True, text_encoder_3=None, tokenizer_3=None)
    assert type(theirs.transformer).__name__ == type(mine.transformer).__name__
    assert dict(theirs.transformer.config.get("removed_units") or {}) == dict(
        mine.transformer.config.get("removed_units") or {}
    )
    for pipeline in (mine, theirs):
        pipeline.set_progress_bar_config(disable=True)
    images = [
        p("a handwritten seven", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
        for p in (mine, theirs)
    ]
    assert (images[0].images == images[1].images).all()


def test_a_depth_cut_reloads_with_the_stock_class(tmp_path):
    out = tmp_path / "depth"
    argv = ["prune", "digits-sd3", "--criterion", "output-loss", "--num-units", "2", "--out", str(out), *FAST]
    assert main([*argv, "--kinds", "transformer_block"]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    reloaded = StableDiffusion3Pipeline.from_pretrained(out, text_encoder_3=None, tokenizer_3=None)
    assert type(reloaded.transformer).__name__ == "SD3Transformer2DModel"
    assert reloaded.transformer.config.num_layers == 6 - len(report["removed_units"]) == 4


def test_eval_compares_the_cut_with_the_original(cut, tmp_path):
    out = tmp_path / "report.json"
    argv = ["eval", str(cut), "--reference", "digits-sd3", "--metrics", "fid,clip,macs", "--out", str(out), *FAST]
    assert main(argv) == 0
    results = json.loads(out.read_text())["results"]
    assert results["fid"]["vs_reference"] > 0 and 0 < results["clip_score"] <= 100
    assert results["macs"] < json.loads(out.read_text())["reference_results"]["macs"]


def test_distill_trains_the_cut_from_the_original(cut, tmp_path):
    out = tmp_path / "distilled"
    argv = ["distill", str(cut), "--teacher", "digits-sd3", "--steps", "2", "--batch-size", "2", "--out", str(out)]
    assert main([*argv, *FAST]) == 0
    history = json.loads((out / "distillation_report.json").read_text())["history"]
    assert len(history) == 2 and {"task", "output", "feature"} <= set(history[0])
    assert type(load_pipeline(str(out))).__name__ == "StableDiffusion3Pipeline"
