"""ChromaPipeline end to end, on a tiny pipeline built offline as Chroma ships (tiny_chroma.py): LD-Pruner on the
pipeline's own guided sampling cuts blocks in place (their modulation is read by slot), the folder reloads where
diffprune cannot be imported through its own code, and a loss criterion, distillation and evaluation run on it."""

import pytest
import torch
from tiny_chroma import tiny_chroma_pipeline
from without_diffprune import latents_without_diffprune

import diffprune
from diffprune.evaluation.latency import LatencySettings
from diffprune.evaluation.metrics.feature_networks import FeatureClassifier
from diffprune.models.adapters import CalibrationSettings

PROMPTS = ["a 1", "the red 22"]
CALIBRATION = dict(num_samples=2, num_inference_steps=2, prompts=PROMPTS, show_progress=False)
SIZE = dict(height=16, width=16)  # the fixture's size (a loaded pipeline has Chroma's own default)
BLOCKS = ("transformer_block", "single_transformer_block")


@pytest.fixture(scope="module")
def chroma():
    pipeline = tiny_chroma_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _latents(pipeline, **call):
    generator = torch.Generator().manual_seed(0)
    return pipeline(prompt=PROMPTS[:1], num_inference_steps=2, generator=generator, output_type="latent", **call)


def test_ld_pruner_cuts_blocks_in_place_and_the_folder_reloads_without_diffprune(chroma, tmp_path):
    result = diffprune.prune(  # the call's own guidance (5.0): a second call per step with the negative prompt
        chroma,
        "ld-pruner",
        diffprune.Budget(num_units=2),
        calibration=CalibrationSettings(**CALIBRATION),
        show_progress=False,
        unit_filter=lambda unit: unit.kind in BLOCKS,
    )
    transformer = result.pipeline.transformer
    assert type(transformer).__name__ == "PrunedChromaTransformer2DModel"
    assert (transformer.config.num_layers, transformer.config.num_single_layers) == (2, 3)  # slots kept
    assert len(result.scores) == 5 and sorted(transformer.config.removed_units) == sorted(result.removed)
    assert result.report["kept_fraction"]["macs"] < 1
    folder = result.save(tmp_path / "cut")
    latents, class_name, module = latents_without_diffprune(
        folder,
        tmp_path / "latents.safetensors",
        trust_remote_code=True,
        prompt=PROMPTS[:1],
        num_inference_steps=2,
        **SIZE,
    )
    assert class_name == "PrunedChromaTransformer2DModel" and module.startswith("diffusers_modules")
    torch.testing.assert_close(latents, _latents(result.pipeline).images, rtol=0, atol=1e-5)


def test_a_loss_criterion_distillation_and_evaluation_run_on_chroma(chroma, tmp_path):
    calibration = CalibrationSettings(**CALIBRATION, guidance_scale=1.0)
    result = diffprune.prune(chroma, "taylor", diffprune.Budget(keep_macs=0.85), calibration=calibration)
    assert result.report["kept_fraction"]["macs"] <= 0.85
    assert len(set(result.scores.values())) == len(result.scores)  # every unit scored, differently
    distilled, history = diffprune.distill(
        result.pipeline, chroma, diffprune.DistillSettings(steps=2, batch_size=2), calibration, show_progress=False
    )
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(step["loss"])) for step in history)
    torch.manual_seed(0)
    report = diffprune.evaluate(
        distilled,
        reference=chroma,
        metrics="fid,latency,macs",
        num_samples=2,
        num_inference_steps=2,
        prompts=PROMPTS,
        fid_features=FeatureClassifier(image_size=16).eval(),
        latency=LatencySettings(runs=1, warmup=0, num_inference_steps=2),
        show_progress=False,
    )
    results, reference = report["results"], report["reference_results"]
    assert results["macs"] < reference["macs"] and results["fid"]["vs_reference"] > 0
    assert results["latency"]["denoiser_forward"]["denoiser_batch_size"] == 1  # guidance as a second call
    folder = tmp_path / "cut"
    diffprune.PruneResult(distilled, result.removed, result.scores, result.report).save(folder)
    reloaded = diffprune.load_pipeline(str(folder))
    reloaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(_latents(reloaded, **SIZE).images, _latents(distilled).images, rtol=0, atol=1e-6)
