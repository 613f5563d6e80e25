"""Diffusion-transformer pipelines through prune and evaluate, on a tiny FLUX pipeline built offline as FLUX.1-dev
ships (CLIP + T5, flow-matching Euler with dynamic shifting, guidance embedding, packed latents): calibration
is the pipeline's own sampling, batched gates equal one cut at a time, the saved cut reloads with stock
diffusers, and what is not supported yet says so in one line."""

import json

import pytest
import torch
from diffusers import DiffusionPipeline, FluxTransformer2DModel
from tiny_transformers import (
    tiny_flux_pipeline,
    tiny_pixart_alpha_pipeline,
    tiny_pixart_sigma_pipeline,
    tiny_sana_pipeline,
    tiny_sd3_pipeline,
)
from untouched import assert_untouched, snapshot

import diffprune
from diffprune.cli import main
from diffprune.criteria import ScoringContext, get_criterion
from diffprune.criteria.score_store import ScoreStore
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.models.components import with_denoiser
from diffprune.models.generation import final_latents
from diffprune.structure.costs import pipeline_cost_inputs
from diffprune.structure.gates import gated, removal_values
from diffprune.structure.transformer_depth import bypassed

PROMPTS = ["a 1", "b 2"]
CALIBRATION = dict(num_samples=4, num_inference_steps=3, prompts=PROMPTS)


@pytest.fixture(scope="module")
def flux():
    return tiny_flux_pipeline()


def test_calibration_latents_are_the_pipelines_own(flux):
    generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
    latents = final_latents(flux, PROMPTS, generators, num_inference_steps=3)
    generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
    expected = flux(prompt=PROMPTS, generator=generators, num_inference_steps=3, output_type="latent").images
    torch.testing.assert_close(latents, expected, rtol=0, atol=1e-6)


def test_a_gate_at_zero_bypasses_both_streams_of_a_block(flux):
    model = flux.transformer
    inputs = pipeline_cost_inputs(flux, batch_size=2)
    units = diffprune.find_units(model, inputs)
    blocks = [u for u in units if diffprune.is_depth_unit(u)]
    assert {u.kind for u in blocks} == {"transformer_block", "single_transformer_block"}
    for unit in (blocks[0], blocks[-1]):  # a double-stream and a single-stream block
        with torch.no_grad():
            with bypassed(model, [unit.name]):
                expected = model(**inputs).sample
            with gated(model, units, removal_values(units, {unit.name})):
                torch.testing.assert_close(model(**inputs).sample, expected, rtol=0, atol=0)


def test_batched_ld_pruner_scores_equal_one_variant_at_a_time(flux):
    def scores(variants_per_batch):
        adapter = adapter_for(flux, CalibrationSettings(**CALIBRATION, show_progress=False))
        units = diffprune.find_units(flux.transformer, pipeline_cost_inputs(flux))
        context = ScoringContext(adapter, units, ScoreStore(None, {}), show_progress=False)
        return get_criterion("ld-pruner", variants_per_batch=variants_per_batch).score(context, units, [], 0)

    batched, one_at_a_time = scores(5), scores(1)
    assert batched.keys() == one_at_a_time.keys()
    for name in batched:
        assert batched[name] == pytest.approx(one_at_a_time[name], rel=1e-4, abs=1e-6)


def test_prune_saves_a_cut_that_stock_diffusers_reloads(flux, tmp_path):
    before = snapshot(flux)
    result = diffprune.prune(
        flux,
        "ld-pruner",
        diffprune.Budget(num_units=2),
        calibration=CalibrationSettings(**CALIBRATION),
        show_progress=False,
        unit_filter=diffprune.is_depth_unit,  # whole blocks: a stock class
    )
    assert_untouched(before, flux)
    assert type(result.pipeline.transformer) is FluxTransformer2DModel
    assert result.report["totals_after"]["macs"] < result.report["totals_before"]["macs"]
    folder = result.save(tmp_path / "cut")
    reloaded = DiffusionPipeline.from_pretrained(folder)  # stock classes only: no trust_remote_code
    config = reloaded.transformer.config
    assert config.num_layers + config.num_single_layers == 5 - 2
    generators = [torch.Generator().manual_seed(0)]
    with torch.no_grad():
        expected = result.pipeline(
            prompt=PROMPTS[:1], generator=generators, num_inference_steps=2, output_type="latent", height=16, width=16
        )
        generators = [torch.Generator().manual_seed(0)]
        again = reloaded(
            prompt=PROMPTS[:1], generator=generators, num_inference_steps=2, output_type="latent", height=16, width=16
        )
    # The size is named: the cut keeps the fixture's small default size, a reloaded pipeline has FLUX's own.
    torch.testing.assert_close(again.images, expected.images, rtol=0, atol=1e-6)
    original = with_denoiser(flux, flux.transformer)
    report = diffprune.evaluate(result.pipeline, reference=original, metrics="macs", num_samples=1, show_progress=False)
    assert report["results"]["macs"] < report["reference_results"]["macs"]


def test_the_cli_prunes_and_lists_a_transformer_pipeline(flux, tmp_path, capsys):
    source = tmp_path / "flux"
    flux.save_pretrained(source)
    assert main(["units", str(source)]) == 0
    assert "single_transformer_blocks.2" in capsys.readouterr().out
    out = tmp_path / "cut"
    argv = ["prune", str(source), "--num-units", "1", "--num-samples", "2", "--inference-steps", "2", "--out", str(out)]
    depth = ["--kinds", "transformer_block,single_transformer_block"]
    assert main([*argv, *depth, "--prompts", str(_prompt_file(tmp_path))]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert len(report["removed_units"]) == 1 and report["settings"]["criterion"] == "ld-pruner"
    DiffusionPipeline.from_pretrained(out)


def _prompt_file(folder):
    path = folder / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


def test_pixart_sigma_prunes_and_reloads_with_stock_diffusers(tmp_path):
    pipeline = tiny_pixart_sigma_pipeline()  # single-stream blocks, DPM-Solver, resolution binning, T5
    result = diffprune.prune(
        pipeline,
        "ld-pruner",
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(num_samples=2, num_inference_steps=2, prompts=PROMPTS),
        show_progress=False,
        unit_filter=diffprune.is_depth_unit,
    )
    assert result.report["kept_fraction"]["macs"] < 1
    reloaded = DiffusionPipeline.from_pretrained(result.save(tmp_path / "cut"))
    assert type(reloaded.transformer).__name__ == "PixArtTransformer2DModel"
    assert reloaded.transformer.config.num_layers == pipeline.transformer.config.num_layers - 1


def test_a_bf16_flux_pipeline_prunes_in_bf16():
    pipeline = tiny_flux_pipeline().to(torch.bfloat16)
    pipeline.default_sample_size = 8
    result = diffprune.prune(
        pipeline,
        "ld-pruner",
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(**CALIBRATION),
        show_progress=False,
    )
    assert {p.dtype for p in result.pipeline.transformer.parameters()} == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(list(result.scores.values()))))


def test_sd3_without_t5_calibrates_on_its_own_latents_prunes_and_reloads(tmp_path):
    pipeline = tiny_sd3_pipeline()  # joint blocks; the last one drops the text stream and is no unit
    generators = [torch.Generator().manual_seed(0)]
    latents = final_latents(pipeline, PROMPTS[:1], generators, num_inference_steps=2)
    generators = [torch.Generator().manual_seed(0)]
    expected = pipeline(prompt=PROMPTS[:1], generator=generators, num_inference_steps=2, output_type="latent")
    torch.testing.assert_close(latents, expected.images, rtol=0, atol=1e-6)
    result = diffprune.prune(
        pipeline,
        "ld-pruner",
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(num_samples=2, num_inference_steps=2, prompts=PROMPTS),
        show_progress=False,
        unit_filter=diffprune.is_depth_unit,
    )
    assert "transformer_blocks.3" not in result.scores
    reloaded = diffprune.load_pipeline(str(result.save(tmp_path / "cut")))  # saved without T5, as it came
    assert reloaded.text_encoder_3 is None and reloaded.transformer.config.num_layers == 3


def test_pixart_alpha_1024_prunes_with_a_loss_and_reloads_with_stock_diffusers(tmp_path):
    pipeline = tiny_pixart_alpha_pipeline()  # resolution and aspect-ratio conditions, 1024 binning
    result = diffprune.prune(
        pipeline,
        "output-loss",
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(num_samples=2, num_inference_steps=1, prompts=PROMPTS),
        show_progress=False,
        unit_filter=diffprune.is_depth_unit,
    )
    assert len(set(result.scores.values())) == len(result.scores) == 3  # every block scored, differently
    reloaded = DiffusionPipeline.from_pretrained(result.save(tmp_path / "cut"))
    assert type(reloaded).__name__ == "PixArtAlphaPipeline"
    assert reloaded.transformer.config.num_layers == 2


def test_sana_prunes_blocks_and_branches_distils_and_reloads(tmp_path):
    pipeline = tiny_sana_pipeline()  # Gemma-2, 32x deep-compression autoencoder, DPM-Solver with flow sigmas
    pipeline.set_progress_bar_config(disable=True)
    calibration = CalibrationSettings(num_samples=2, num_inference_steps=2, prompts=PROMPTS, show_progress=False)
    result = diffprune.prune(
        pipeline, "output-loss", diffprune.Budget(keep_macs=0.8), calibration=calibration, show_progress=False
    )
    assert result.report["kept_fraction"]["macs"] <= 0.8
    assert {u["kind"] for u in result.report["units"]} == {
        "transformer_block",
        "self_attention",
        "cross_attention",
        "feed_forward",
    }
    distilled, history = diffprune.distill(
        result.pipeline, pipeline, diffprune.DistillSettings(steps=2, batch_size=2), calibration, show_progress=False
    )
    assert len(history) == 2
    folder = tmp_path / "cut"
    diffprune.PruneResult(distilled, result.removed, result.scores, result.report).save(folder)
    reloaded = diffprune.load_pipeline(str(folder))
    reloaded.set_progress_bar_config(disable=True)
    latents = [
        p(prompt=PROMPTS[:1], num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent")
        for p in (distilled, reloaded)
    ]
    torch.testing.assert_close(latents[1].images, latents[0].images, rtol=0, atol=1e-6)
