"""Plain diffusers export: same outputs without diffprune classes, and a clear error where impossible."""

import pytest
import torch
from tiny_models import ddpm_unet, sd_unet

import diffprune
from diffprune.errors import DiffpruneError
from diffprune.families import example_inputs
from diffprune.structure.export import export_plain


@pytest.mark.parametrize(
    "build, names",
    [
        (
            sd_unet,
            [
                "mid_block",
                "down_blocks.0.attentions.0",
                "down_blocks.0.attentions.1",
                "up_blocks.1.attentions.0",
                "up_blocks.1.attentions.1",
                "up_blocks.1.attentions.2",
            ],
        ),
        (ddpm_unet, ["mid_block", "up_blocks.0.attentions.0", "up_blocks.0.attentions.1", "up_blocks.0.attentions.2"]),
    ],
)
def test_exported_model_is_stock_and_equal(build, names, tmp_path):
    unet = build()
    cut = diffprune.remove_units(unet, names)
    plain = export_plain(cut)
    assert type(plain).__module__.startswith("diffusers")
    inputs = example_inputs(unet, 2, text_length=6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(plain(**inputs).sample, cut(**inputs).sample, rtol=0, atol=0)
    plain.save_pretrained(tmp_path)
    assert "removed_units" not in (tmp_path / "config.json").read_text()


def test_inexpressible_removal_names_the_units_in_the_way():
    cut = diffprune.remove_units(sd_unet(), ["down_blocks.0.resnets.1", "mid_block"])
    with pytest.raises(DiffpruneError, match="no stock diffusers config: down_blocks.0.resnets.1"):
        export_plain(cut)


def test_export_command_writes_a_stock_pipeline_that_lists_the_removed_units(tmp_path, capsys):
    import json

    from tiny_models import tiny_ddpm_pipeline

    from diffprune.cli import main

    pipeline = tiny_ddpm_pipeline()
    pipeline.unet = diffprune.remove_units(pipeline.unet, ["mid_block"])
    pipeline.save_pretrained(tmp_path / "pruned")
    assert main(["export", str(tmp_path / "pruned"), "--out", str(tmp_path / "plain")]) == 0
    assert json.loads((tmp_path / "plain" / "model_index.json").read_text())["unet"] == ["diffusers", "UNet2DModel"]
    # The stock config no longer names the removed units, so the folder says them in plain words.
    assert json.loads((tmp_path / "plain" / "pruning_report.json").read_text())["removed_units"] == ["mid_block"]
    assert "- `mid_block`" in (tmp_path / "plain" / "README.md").read_text()
    assert main(["export", str(tmp_path / "plain"), "--out", str(tmp_path / "again")]) == 2
    assert "no removed units" in capsys.readouterr().err
