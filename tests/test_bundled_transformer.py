"""The bundled diffusion transformer (digits-sd3) through the CLI as a user runs it: prune with a loss-based
criterion, reload the cut with stock diffusers, evaluate it against the original, distil it."""

import json

import pytest
import torch
from diffusers import StableDiffusion3Pipeline

from diffprune.cli import main
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


def test_prune_cuts_blocks_and_the_cut_reloads_with_stock_diffusers(cut):
    report = json.loads((cut / "pruning_report.json").read_text())
    assert report["denoiser"]["class"] == "SD3Transformer2DModel"
    assert report["kept_fraction"]["macs"] <= 0.7
    assert all(name.startswith("transformer_blocks.") for name in report["removed_units"])
    reloaded = StableDiffusion3Pipeline.from_pretrained(cut, text_encoder_3=None, tokenizer_3=None)
    assert reloaded.transformer.config.num_layers == 6 - len(report["removed_units"])


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
    StableDiffusion3Pipeline.from_pretrained(out, text_encoder_3=None, tokenizer_3=None)
