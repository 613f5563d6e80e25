"""A pipeline whose UNet lost units reloads with stock diffusers and generates the same outputs."""

import json

import numpy as np
import torch
from diffusers import DiffusionPipeline

import diffprune
from diffprune.units import find_units
from tiny_models import tiny_ddpm_pipeline, tiny_sd_pipeline


def _generate_sd(pipeline):
    return pipeline(
        ["a 7", "a 3"], num_inference_steps=3, guidance_scale=5.0, output_type="np",
        generator=torch.Generator().manual_seed(0), height=32, width=32,
    ).images


def test_pruned_stable_diffusion_reloads_with_stock_diffusers(tmp_path):
    pipeline = tiny_sd_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    units = find_units(pipeline.unet)
    pipeline.unet = diffprune.remove_units(pipeline.unet, ["down_blocks.0.attentions.1", "mid_block.resnets.1"])
    expected = _generate_sd(pipeline)
    pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["unet"] == ["diffprune", "PrunedUNet2DConditionModel"]
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))

    reloaded = DiffusionPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    assert type(reloaded.unet).__name__ == "PrunedUNet2DConditionModel"
    assert len(find_units(reloaded.unet)) < len(units)
    np.testing.assert_array_equal(_generate_sd(reloaded), expected)


def test_pruned_ddpm_reloads_with_stock_diffusers(tmp_path):
    pipeline = tiny_ddpm_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    pipeline.unet = diffprune.remove_units(pipeline.unet, ["mid_block", "down_blocks.1.attentions.1"])
    expected = pipeline(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np").images
    pipeline.save_pretrained(tmp_path)
    reloaded = DiffusionPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    actual = reloaded(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np").images
    np.testing.assert_array_equal(actual, expected)
