"""A saved cut reloads with the same outputs, in the most plain form its removed set allows, and never silently
as the full model.

On-disk format (changed with issue 14): a cut that a stock config cannot express saves its UNet with its own
code (unet/diffprune.py), so plain `DiffusionPipeline.from_pretrained(folder)` now asks for
trust_remote_code=True; diffprune.load_pipeline loads it with diffprune's own classes. A cut that a stock config
expresses is saved with stock classes by `save_pipeline` (what prune and distill use).
"""

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, UNet2DConditionModel, UNet2DModel
from tiny_models import tiny_ddpm_pipeline, tiny_sd_pipeline

import diffprune
from diffprune.models.saved_cuts import save_pipeline
from diffprune.structure.units import find_units


def _generate_sd(pipeline):
    return pipeline(
        ["a 7", "a 3"],
        num_inference_steps=3,
        guidance_scale=5.0,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
        height=32,
        width=32,
    ).images


def _generate_ddpm(pipeline):
    return pipeline(
        batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np"
    ).images


def test_pruned_stable_diffusion_reloads_with_diffprune_and_with_its_own_code(tmp_path):
    pipeline = tiny_sd_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    units = find_units(pipeline.unet)
    pipeline.unet = diffprune.remove_units(pipeline.unet, ["down_blocks.0.attentions.1", "mid_block.resnets.1"])
    expected = _generate_sd(pipeline)
    pipeline.save_pretrained(tmp_path)  # a user's own save_pretrained carries the code too
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["unet"] == ["diffprune", "PrunedUNet2DConditionModel"]
    assert (tmp_path / "unet" / "diffprune.py").is_file()
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))

    reloaded = diffprune.load_pipeline(str(tmp_path))
    assert type(reloaded.unet) is diffprune.PrunedUNet2DConditionModel  # diffprune's class, not the folder's copy
    assert len(find_units(reloaded.unet)) < len(units)
    np.testing.assert_array_equal(_generate_sd(reloaded), expected)

    with_code = DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)
    with_code.set_progress_bar_config(disable=True)
    assert type(with_code.unet).__name__ == "PrunedUNet2DConditionModel"
    np.testing.assert_array_equal(_generate_sd(with_code), expected)
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        DiffusionPipeline.from_pretrained(tmp_path)


def test_pruned_ddpm_reloads_with_diffprune(tmp_path):
    pipeline = tiny_ddpm_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    pipeline.unet = diffprune.remove_units(pipeline.unet, ["mid_block", "down_blocks.1.attentions.1"])
    expected = _generate_ddpm(pipeline)
    pipeline.save_pretrained(tmp_path)
    np.testing.assert_array_equal(_generate_ddpm(diffprune.load_pipeline(str(tmp_path))), expected)


@pytest.mark.parametrize(
    "build, names, stock_class",
    [
        (tiny_sd_pipeline, ["down_blocks.0.resnets.1"], UNet2DConditionModel),
        (tiny_ddpm_pipeline, ["down_blocks.1.attentions.0", "mid_block.resnets.1"], UNet2DModel),
    ],
)
def test_stock_class_refuses_a_cut_it_cannot_build_and_says_how_to_load_it(tmp_path, build, names, stock_class):
    pipeline = build()
    pipeline.unet = diffprune.remove_units(pipeline.unet, names)
    assert save_pipeline(pipeline, tmp_path) is False
    # Without the refusal the stock class would build the full model, the removed units "newly initialized".
    with pytest.raises(ValueError, match=r"cut by diffprune.*trust_remote_code=True"):
        stock_class.from_pretrained(tmp_path, subfolder="unet")
    with pytest.raises(ValueError, match="cut by diffprune"):
        stock_class.from_pretrained(tmp_path / "unet")
    # The refusal is read by diffprune's classes as loading data, not as a config entry of the model.
    reloaded = type(pipeline.unet).from_pretrained(tmp_path, subfolder="unet")
    assert "quantization_config" not in reloaded.config and "auto_map" not in reloaded.config
    assert dict(reloaded.config.removed_units) == dict(pipeline.unet.config.removed_units)


def test_cut_a_stock_config_expresses_is_saved_with_stock_classes(tmp_path):
    pipeline = tiny_sd_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    pipeline.unet = diffprune.remove_units(
        pipeline.unet, ["mid_block", "up_blocks.1.attentions.0", "up_blocks.1.attentions.1", "up_blocks.1.attentions.2"]
    )
    expected = _generate_sd(pipeline)
    assert save_pipeline(pipeline, tmp_path) is True
    assert json.loads((tmp_path / "model_index.json").read_text())["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert not (tmp_path / "unet" / "diffprune.py").exists()
    unet = UNet2DConditionModel.from_pretrained(tmp_path, subfolder="unet")
    assert unet.config.mid_block_type is None and unet.config.up_block_types[1] == "UpBlock2D"
    reloaded = DiffusionPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_generate_sd(reloaded), expected)


def test_distilled_folder_keeps_the_removed_units_in_plain_words(tmp_path):
    from types import SimpleNamespace

    from diffprune.cli.distill import save_distilled
    from diffprune.recovery.distillation import DistillSettings

    pipeline = tiny_ddpm_pipeline()
    pipeline.unet = diffprune.remove_units(pipeline.unet, ["down_blocks.1.attentions.0"])
    pipeline.save_pretrained(tmp_path / "cut")  # by hand: no pruning report, the config names the unit
    args = SimpleNamespace(model=str(tmp_path / "cut"), teacher="original")
    save_distilled(pipeline, [{"loss": 1.0}], DistillSettings(steps=1), args, tmp_path / "distilled")
    report = json.loads((tmp_path / "distilled" / "pruning_report.json").read_text())
    assert report["removed_units"] == ["down_blocks.1.attentions.0"]
    card = (tmp_path / "distilled" / "README.md").read_text()
    assert "- `down_blocks.1.attentions.0`" in card and "trust_remote_code=True" in card
