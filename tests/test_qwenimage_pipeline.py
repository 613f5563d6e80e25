"""QwenImagePipeline end to end, on a tiny pipeline built offline as Qwen-Image ships (tiny_qwenimage.py):
calibration is the pipeline's own sampling with true classifier-free guidance as users run it, LD-Pruner's
depth cut is the stock class and reloads where diffprune cannot be imported, a loss criterion cuts blocks and
branches, distillation recovers it, evaluation scores it, the CLI prunes a saved folder, and bf16 prunes in bf16."""

import json

import pytest
import torch
from diffusers import QwenImageTransformer2DModel
from tiny_evaluation_models import tiny_clip
from tiny_qwenimage import tiny_qwenimage_pipeline
from without_diffprune import latents_without_diffprune

import diffprune
from diffprune.cli import main
from diffprune.evaluation.latency import LatencySettings
from diffprune.evaluation.metrics.feature_networks import FeatureClassifier
from diffprune.models.adapters import CalibrationSettings
from diffprune.models.generation import final_latents

PROMPTS = ["a 1", "the red 22"]  # two lengths: the pipeline pads a batch to its longest prompt and masks
CALIBRATION = dict(num_samples=2, num_inference_steps=2, prompts=PROMPTS, show_progress=False)
SIZE = dict(height=16, width=16)  # the fixture's size (a loaded pipeline has Qwen-Image's own default)


@pytest.fixture(scope="module")
def qwenimage():
    pipeline = tiny_qwenimage_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _latents(pipeline, **call):
    generator = torch.Generator().manual_seed(0)
    return pipeline(prompt=PROMPTS[:1], num_inference_steps=2, generator=generator, output_type="latent", **call)


def test_calibration_runs_true_cfg_with_the_model_cards_negative_prompt(qwenimage):
    calls = []
    hook = qwenimage.transformer.register_forward_hook(lambda *_: calls.append(1))
    try:
        generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
        guided = final_latents(qwenimage, PROMPTS, generators, num_inference_steps=2)  # the call's true_cfg_scale
        guided_calls, calls[:] = len(calls), []
        generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
        unguided = final_latents(qwenimage, PROMPTS, generators, num_inference_steps=2, guidance_scale=1.0)
    finally:
        hook.remove()
    assert (guided_calls, len(calls)) == (4, 2)  # a second call per step with the negative prompt, or none
    generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
    expected = qwenimage(
        prompt=PROMPTS,
        negative_prompt=" ",
        true_cfg_scale=4.0,
        generator=generators,
        num_inference_steps=2,
        output_type="latent",
    ).images
    torch.testing.assert_close(guided, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(guided, unguided)


def test_ld_pruner_depth_cut_is_the_stock_class_and_reloads_without_diffprune(qwenimage, tmp_path):
    result = diffprune.prune(
        qwenimage,
        "ld-pruner",
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(**CALIBRATION),
        show_progress=False,
        unit_filter=diffprune.is_depth_unit,
    )
    transformer = result.pipeline.transformer
    assert type(transformer) is QwenImageTransformer2DModel and transformer.config.num_layers == 2
    assert len(result.scores) == 3 and result.report["kept_fraction"]["macs"] < 1
    folder = result.save(tmp_path / "cut")
    latents, class_name, _ = latents_without_diffprune(
        folder, tmp_path / "latents.safetensors", prompt=PROMPTS[:1], num_inference_steps=2, **SIZE
    )
    assert class_name == "QwenImageTransformer2DModel"  # stock diffusers, no remote code
    torch.testing.assert_close(latents, _latents(result.pipeline).images, rtol=0, atol=1e-5)


def test_a_loss_criterion_cuts_blocks_and_branches_distillation_recovers_and_evaluation_scores_it(qwenimage, tmp_path):
    calibration = CalibrationSettings(**CALIBRATION)
    result = diffprune.prune(
        qwenimage,
        diffprune.criteria.GradFlow(steps=4, batch_size=2),
        diffprune.Budget(keep_macs=0.85),
        calibration=calibration,
        show_progress=False,
    )
    assert result.report["kept_fraction"]["macs"] <= 0.85
    kinds = {unit["kind"] for unit in result.report["units"]}
    assert kinds == {"transformer_block", "joint_attention", "feed_forward", "context_feed_forward"}
    distilled, history = diffprune.distill(
        result.pipeline, qwenimage, diffprune.DistillSettings(steps=2, batch_size=2), calibration, show_progress=False
    )
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(step["loss"])) for step in history)
    clip_folder = tmp_path / "clip"
    for part in tiny_clip():
        part.save_pretrained(clip_folder)
    torch.manual_seed(0)
    report = diffprune.evaluate(
        distilled,
        reference=qwenimage,
        metrics="fid,clip,latency,macs",
        num_samples=2,
        num_inference_steps=2,
        prompts=PROMPTS,
        fid_features=FeatureClassifier(image_size=16).eval(),
        clip_model=str(clip_folder),
        latency=LatencySettings(runs=1, warmup=0, num_inference_steps=2),
        show_progress=False,
    )
    results, reference = report["results"], report["reference_results"]
    assert results["macs"] < reference["macs"] and results["fid"]["vs_reference"] > 0
    assert report["scored_with"]["clip"] == str(clip_folder) and isinstance(results["clip_score"], float)
    assert results["latency"]["denoiser_forward"]["denoiser_batch_size"] == 1  # true CFG: one sample per call
    folder = tmp_path / "cut"
    diffprune.PruneResult(distilled, result.removed, result.scores, result.report).save(folder)
    reloaded = diffprune.load_pipeline(str(folder))
    reloaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(_latents(reloaded, **SIZE).images, _latents(distilled).images, rtol=0, atol=1e-6)


def test_the_cli_lists_and_prunes_a_saved_qwenimage_pipeline(qwenimage, tmp_path, capsys):
    source = tmp_path / "qwenimage"
    qwenimage.save_pretrained(source)
    assert main(["units", str(source)]) == 0
    assert "transformer_blocks.2.txt_mlp" in capsys.readouterr().out
    out = tmp_path / "cut"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    # A loaded pipeline samples at Qwen-Image's own 1024x1024 default (4096 tokens): a data-free criterion here;
    # the sampling criteria run above through the same prune().
    argv = ["prune", str(source), "--criterion", "magnitude", "--num-units", "1", "--kinds", "transformer_block"]
    assert main([*argv, "--prompts", str(prompts), "--out", str(out)]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert len(report["removed_units"]) == 1 and report["removed_units"][0].startswith("transformer_blocks.")
    assert report["settings"]["criterion"] == "magnitude"
    assert json.loads((out / "transformer" / "config.json").read_text())["num_layers"] == 2


def test_a_bf16_qwenimage_pipeline_prunes_in_bf16():
    pipeline = tiny_qwenimage_pipeline().to(torch.bfloat16)
    pipeline.set_progress_bar_config(disable=True)
    result = diffprune.prune(
        pipeline,
        "ld-pruner",
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(**CALIBRATION),
        show_progress=False,
        unit_filter=lambda unit: unit.kind in ("transformer_block", "context_feed_forward"),
    )
    assert {p.dtype for p in result.pipeline.transformer.parameters()} == {torch.bfloat16}
    assert len(result.scores) == 6 and all(torch.isfinite(torch.tensor(list(result.scores.values()))))
    assert len(result.removed) == 1
