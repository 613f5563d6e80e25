"""LoRAs made (offline, by peft) for the original model apply to a cut with diffusers' own load_lora_weights: the
cut with the adapted LoRA equals the original with the LoRA and the removed units gated to 0."""

import json
import logging

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file
from tiny_models import tiny_sd_pipeline

import diffprune
from diffprune.cli import main
from diffprune.models.saved_cuts import save_pipeline
from diffprune.structure.gates import gated, removal_values
from diffprune.structure.units import find_units

# A resnet, a whole attention block and a cross-attention sub-layer: each kind of replacement (Bypass, ZeroBranch).
REMOVED = [
    "down_blocks.0.resnets.1",
    "down_blocks.0.attentions.1",
    "up_blocks.1.attentions.2.transformer_blocks.0.attn2",
]
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv1"]


def _lora_file(folder):
    """A LoRA for the tiny SD UNet, with non-zero B (peft's init leaves B at 0, which would test nothing)."""
    unet = tiny_sd_pipeline().unet
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False)
    unet.add_adapter(config)
    StableDiffusionPipeline.save_lora_weights(
        folder,
        unet_lora_layers=get_peft_model_state_dict(unet),
        unet_lora_adapter_metadata=config.to_dict(),
    )
    return folder / "pytorch_lora_weights.safetensors"


def _generate(pipeline):
    pipeline.set_progress_bar_config(disable=True)
    return pipeline(
        ["a 7", "a 3"],
        num_inference_steps=3,
        guidance_scale=5.0,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
        height=32,
        width=32,
    ).images


def _expected(lora):
    """The original with the LoRA, the removed units bypassed by gates."""
    original = tiny_sd_pipeline()
    units = [unit for unit in find_units(original.unet) if unit.name in REMOVED]
    original.load_lora_weights(str(lora))
    with gated(original.unet, units, removal_values(units, REMOVED)):
        return _generate(original)


def _cut():
    pipeline = tiny_sd_pipeline()
    pipeline.unet = diffprune.remove_units(pipeline.unet, REMOVED)
    return pipeline


def test_adapted_lora_on_the_cut_equals_the_gated_original_with_the_lora(tmp_path, caplog):
    lora = _lora_file(tmp_path)
    save_pipeline(_cut(), tmp_path / "cut")
    with caplog.at_level(logging.WARNING, logger="diffprune.recovery.lora"):
        adapted = diffprune.adapt_lora(lora, tmp_path / "cut")
    assert set(adapted.dropped) == set(REMOVED)
    assert all(key.startswith("unet." + unit + ".") for unit, keys in adapted.dropped.items() for key in keys)
    assert adapted.kept + adapted.dropped_count == len(StableDiffusionPipeline.lora_state_dict(str(lora))[0])
    assert f"dropped {adapted.dropped_count} of removed units" in caplog.text and REMOVED[0] in caplog.text

    adapted.save(tmp_path / "adapted.safetensors")
    cut = diffprune.load_pipeline(str(tmp_path / "cut"))
    cut.load_lora_weights(str(tmp_path / "adapted.safetensors"))
    images = _generate(cut)
    without_lora = _generate(diffprune.load_pipeline(str(tmp_path / "cut")))
    assert np.abs(images - without_lora).max() > 1e-3, "the LoRA changes the output"
    np.testing.assert_allclose(images, _expected(lora), atol=1e-5)


def test_a_cut_saved_with_stock_classes_adapts_through_its_report(tmp_path):
    lora = _lora_file(tmp_path)
    removed = ["mid_block", "down_blocks.0.attentions.0", "down_blocks.0.attentions.1"]
    pipeline = tiny_sd_pipeline()
    pipeline.unet = diffprune.remove_units(pipeline.unet, removed)
    assert save_pipeline(pipeline, tmp_path / "cut") is True
    with pytest.raises(diffprune.DiffpruneError, match="target UNet modules the original model does not have"):
        diffprune.adapt_lora(lora, tmp_path / "cut")  # without the report nothing says these units were cut
    (tmp_path / "cut" / "pruning_report.json").write_text(json.dumps({"removed_units": removed}))
    adapted = diffprune.adapt_lora(lora, tmp_path / "cut")
    assert set(adapted.dropped) == {"down_blocks.0.attentions.0", "down_blocks.0.attentions.1", "mid_block"}
    loaded = StableDiffusionPipeline.from_pretrained(tmp_path / "cut")
    loaded.load_lora_weights(adapted.state_dict)
    assert loaded.unet.peft_config  # diffusers' own loader took every kept key


def test_lora_command_writes_the_adapted_file_and_refuses_bad_input(tmp_path, capsys):
    lora = _lora_file(tmp_path)
    save_pipeline(_cut(), tmp_path / "cut")
    out = tmp_path / "adapted.safetensors"
    assert main(["lora", str(lora), "--pruned", str(tmp_path / "cut"), "--out", str(out)]) == 0
    assert "dropped" in capsys.readouterr().out
    assert set(StableDiffusionPipeline.lora_state_dict(str(out))[0]) == set(
        diffprune.adapt_lora(lora, tmp_path / "cut").state_dict
    )
    not_a_lora = tmp_path / "weights.safetensors"
    save_file({"conv_in.weight": torch.zeros(2)}, str(not_a_lora))
    cases = [
        ([str(tmp_path / "missing.safetensors"), str(tmp_path / "new1.safetensors")], "no such LoRA file"),
        ([str(not_a_lora), str(tmp_path / "new2.safetensors")], "holds no LoRA weights"),
        ([str(lora), str(out)], "already exists"),
    ]
    for (source, target), message in cases:
        assert main(["lora", source, "--pruned", str(tmp_path / "cut"), "--out", target]) == 2
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1
