"""diffprune.prune(): budgets measured after surgery, zero-effect units first, exact resume, saved outputs."""

import json

import pytest
import torch
from diffusers import DiffusionPipeline
from test_latent_impact import make_zero_effect
from tiny_models import tiny_ddpm_pipeline

import diffprune.pruning as prune_module
from diffprune.adapters import CalibrationSettings
from diffprune.costs import count_macs
from diffprune.errors import DiffpruneError
from diffprune.pruning import prune
from diffprune.score_store import ScoreStore


def _calibration():
    return CalibrationSettings(num_samples=4, num_inference_steps=3)


def _prune(pipeline, **kwargs):
    return prune(pipeline, calibration=_calibration(), show_progress=False, **kwargs)


def test_budget_is_met_on_the_cut_model_and_zero_effect_unit_goes_first():
    pipeline = tiny_ddpm_pipeline()
    make_zero_effect(pipeline.unet, "down_blocks.0.resnets.1")
    result = _prune(pipeline, keep_macs=0.7)
    assert result.removed[0] == "down_blocks.0.resnets.1"
    measured = count_macs(result.pipeline.unet)
    assert measured <= 0.7 * count_macs(pipeline.unet)
    assert result.report["totals_after"]["macs"] == measured
    assert type(pipeline.unet).__name__ == "UNet2DModel", "the input pipeline stays untouched"


def test_progressive_rounds_rescore_what_is_left():
    result = _prune(tiny_ddpm_pipeline(), keep_macs=0.7, rounds=2)
    rounds = {row["scored_in_round"] for row in result.report["units"] if row["score"] is not None}
    assert rounds == {0, 1}
    assert result.report["kept_fraction"]["macs"] <= 0.7


def test_interrupted_scoring_resumes_to_the_same_result(tmp_path, monkeypatch):
    uninterrupted = _prune(tiny_ddpm_pipeline(), keep_macs=0.7, variants_per_batch=3)
    original_put = ScoreStore.put_many
    calls = {"count": 0}

    def put_then_interrupt(self, round_index, scores):
        original_put(self, round_index, scores)
        calls["count"] += 1
        if calls["count"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ScoreStore, "put_many", put_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _prune(tiny_ddpm_pipeline(), keep_macs=0.7, variants_per_batch=3, work_dir=tmp_path)
    monkeypatch.setattr(ScoreStore, "put_many", original_put)
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert len(saved["rounds"]["0"]) == 6, "two groups of three were stored before the interrupt"
    resumed = _prune(tiny_ddpm_pipeline(), keep_macs=0.7, variants_per_batch=3, work_dir=tmp_path)
    assert resumed.removed == uninterrupted.removed
    assert resumed.scores == pytest.approx(uninterrupted.scores)


def test_saved_result_reloads_with_stock_diffusers(tmp_path):
    result = _prune(tiny_ddpm_pipeline(), num_units=2)
    folder = result.save(tmp_path / "out")
    report = json.loads((folder / "pruning_report.json").read_text())
    assert report["removed_units"] == result.removed
    assert {"name", "kind", "params", "macs", "score", "removed"} <= set(report["units"][0])
    assert (folder / "README.md").read_text().startswith("# Pruned DDPMPipeline")
    assert (folder / "scores.png").stat().st_size > 0
    reloaded = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)  # the cut ships its code
    assert sorted(reloaded.unet.config.removed_units) == sorted(result.removed)
    with pytest.raises(DiffpruneError, match="already holds results"):
        result.save(folder)


def test_unknown_kind_and_bad_rounds_are_user_errors():
    with pytest.raises(DiffpruneError, match="no units of kind"):
        _prune(tiny_ddpm_pipeline(), kinds=["transformer_block"])
    with pytest.raises(DiffpruneError, match="rounds"):
        _prune(tiny_ddpm_pipeline(), rounds=0)
    with pytest.raises(DiffpruneError, match="variants-per-batch"):
        _prune(tiny_ddpm_pipeline(), variants_per_batch=0)


def test_nan_latents_are_reported(monkeypatch):
    pipeline = tiny_ddpm_pipeline()
    with torch.no_grad():
        pipeline.unet.conv_out.bias.fill_(float("nan"))
    with pytest.raises(DiffpruneError, match="NaN"):
        _prune(pipeline, num_units=1)


def test_work_folder_name_is_hidden():
    assert prune_module.WORK_FOLDER.startswith(".")
