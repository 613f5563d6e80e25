"""`diffprune units` and the one-line errors every command shares for bad model paths."""

import json
import subprocess
import sys

import pytest
from cli_errors import one_line_error

from diffprune.cli import main


@pytest.fixture(scope="module")
def dit_folder(tmp_path_factory):
    """A class-conditional DiT pipeline (tests/test_class_conditional.py prunes one)."""
    from tiny_transformers import tiny_dit_pipeline

    folder = tmp_path_factory.mktemp("dit")
    tiny_dit_pipeline().save_pretrained(folder)
    return folder


def test_units_lists_every_unit_with_kind_and_cost(ddpm_folder, capsys):
    assert main(["units", str(ddpm_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = {row["name"] for row in report["units"]}
    assert "mid_block" in names and "down_blocks.1.attentions.0" in names
    assert all(0 < row["macs_share"] < 1 for row in report["units"])
    assert main(["units", str(ddpm_folder)]) == 0
    assert "mid_block" in capsys.readouterr().out


def test_missing_path(capsys, tmp_path):
    assert "no such folder" in one_line_error(["units", str(tmp_path / "nope")], capsys)


def test_folder_that_is_not_a_pipeline(capsys, tmp_path):
    assert "not a diffusers pipeline folder" in one_line_error(["units", str(tmp_path)], capsys)


def test_single_model_folder_gets_a_hint(capsys, ddpm_folder):
    assert "pass the pipeline folder above it" in one_line_error(["units", str(ddpm_folder / "unet")], capsys)


def test_a_dit_pipelines_blocks_and_branches_are_listed(capsys, dit_folder):
    assert main(["units", str(dit_folder), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["units"]
    blocks = [row["name"] for row in rows if row["kind"] == "transformer_block"]
    assert blocks == ["transformer_blocks.1", "transformer_blocks.2", "transformer_blocks.3"]  # block 0 conditions
    # DiT's output layer
    assert "transformer_blocks.0.ff" in [row["name"] for row in rows]  # its branches can go


def test_a_pipeline_without_a_denoiser_names_supported_families():
    from types import SimpleNamespace

    from diffprune.errors import DiffpruneError
    from diffprune.models.loading import check_has_denoiser

    with pytest.raises(DiffpruneError, match="has no UNet or transformer.*UNet2DConditionModel"):
        check_has_denoiser(SimpleNamespace(unet=None, transformer=None))


def test_cli_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "diffprune", "units", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[-1]], "one line only"
    assert "no such folder" in result.stderr


def test_unreachable_hub_id_is_a_one_line_error(capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network wait in the test
    assert "could not load pipeline 'nobody-here/no-such-model'" in one_line_error(
        ["units", "nobody-here/no-such-model"], capsys
    )


def test_bundled_names_work_wherever_a_path_is_taken(capsys):
    assert main(["units", "digits-ddpm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["units"]
