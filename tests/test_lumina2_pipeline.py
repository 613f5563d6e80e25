"""Lumina-Image 2.0 end to end, on a tiny pipeline built offline as it ships (tiny_lumina2.py): prune with
LD-Pruner (a depth cut that stock diffusers reloads without diffprune) and with a gradient criterion in bf16
(every branch, gated after its RMSNorm, gets a real score), evaluate, distill, save, reload, and the CLI once."""

import json
import os
import statistics
import subprocess
import sys

import pytest
import torch
from diffusers import DiffusionPipeline, Lumina2Transformer2DModel
from safetensors.torch import save_file
from tiny_lumina2 import tiny_lumina2_pipeline
from untouched import assert_untouched, snapshot

import diffprune
from diffprune.cli import main
from diffprune.criteria import Taylor
from diffprune.evaluation.latency import LatencySettings
from diffprune.evaluation.metrics.feature_networks import FeatureClassifier
from diffprune.families import example_inputs
from diffprune.models.adapters import CalibrationSettings

PROMPTS = ["a 1", "bb 22 c"]
CALIBRATION = dict(num_samples=2, num_inference_steps=2, prompts=PROMPTS, show_progress=False)


@pytest.fixture(scope="module")
def lumina():
    pipeline = tiny_lumina2_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _latents(pipeline, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return pipeline(prompt=PROMPTS[:1], generator=generator, num_inference_steps=2, output_type="latent").images


# Runs in a fresh interpreter that cannot import diffprune: the saved depth cut is stock Lumina 2.
WITHOUT_DIFFPRUNE = """
import sys
sys.modules["diffprune"] = None
import torch
from diffusers import DiffusionPipeline, Lumina2Pipeline, Lumina2Transformer2DModel
from safetensors.torch import load_file

pipeline = DiffusionPipeline.from_pretrained(sys.argv[1])
assert type(pipeline) is Lumina2Pipeline and type(pipeline.transformer) is Lumina2Transformer2DModel
pipeline.set_progress_bar_config(disable=True)
with torch.no_grad():
    latents = pipeline(prompt=["a 1"], generator=torch.Generator().manual_seed(0), num_inference_steps=2,
                       output_type="latent").images
torch.testing.assert_close(latents, load_file(sys.argv[2])["latents"], rtol=0, atol=1e-6)
print("ok", pipeline.transformer.config.num_layers)
"""


def test_ld_pruner_depth_cut_evaluates_and_reloads_with_stock_diffusers(lumina, tmp_path):
    before = snapshot(lumina)
    result = diffprune.prune(
        lumina,
        "ld-pruner",
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(**CALIBRATION),
        show_progress=False,
        unit_filter=diffprune.is_depth_unit,  # the main stack's blocks: the stock class
    )
    assert_untouched(before, lumina)
    assert set(result.scores) == {"layers.0", "layers.1", "layers.2"} and len(set(result.scores.values())) == 3
    assert type(result.pipeline.transformer) is Lumina2Transformer2DModel
    assert result.pipeline.transformer.config.num_layers == 2
    folder = result.save(tmp_path / "cut")
    save_file({"latents": _latents(result.pipeline).contiguous()}, tmp_path / "latents.safetensors")
    env = {**os.environ, "PYTHONPATH": ""}
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_DIFFPRUNE, str(folder), str(tmp_path / "latents.safetensors")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok 2")

    torch.manual_seed(0)
    features = FeatureClassifier(image_size=16).eval()  # random weights: a fixed feature map is all FID needs
    report = diffprune.evaluate(
        result.pipeline,
        reference=lumina,
        metrics="fid,macs,latency",
        num_samples=2,
        prompts=PROMPTS,
        num_inference_steps=2,
        fid_features=features,
        latency=LatencySettings(runs=1, warmup=0, num_inference_steps=1),
        show_progress=False,
    )
    results, reference = report["results"], report["reference_results"]
    assert results["macs"] < reference["macs"] and results["params"] < reference["params"]
    assert results["fid"]["vs_reference"] > 0  # the cut draws other images from the same seeds
    assert results["latency"]["pipeline"]["runs"] == 1


def test_a_gradient_criterion_in_bf16_scores_every_branch_then_the_cut_distils_and_reloads(lumina, tmp_path):
    pipeline = tiny_lumina2_pipeline().to(torch.bfloat16)
    pipeline.set_progress_bar_config(disable=True)
    calibration = CalibrationSettings(**CALIBRATION)
    result = diffprune.prune(
        pipeline,
        Taylor(num_batches=1, batch_size=2),
        diffprune.Budget(num_units=3),
        calibration=calibration,
        show_progress=False,
    )
    kinds = {u["name"]: u["kind"] for u in result.report["units"]}
    assert set(kinds.values()) == {"refiner_block", "transformer_block", "self_attention", "feed_forward"}
    # Gated after their RMSNorms, attention and feed-forward branches get a gradient (on the branch itself,
    # the norm would hide it: d norm(g f) / dg = 0 at g = 1).
    branches = [result.scores[n] for n, kind in kinds.items() if kind in ("self_attention", "feed_forward")]
    blocks = [result.scores[n] for n, kind in kinds.items() if kind.endswith("block")]
    assert min(branches) > 0 and statistics.median(branches) > 0.1 * statistics.median(blocks)
    cut = result.pipeline.transformer
    assert {p.dtype for p in cut.parameters()} == {torch.bfloat16}
    assert len(result.removed) == 3 and type(cut).__name__ == "PrunedLumina2Transformer2DModel"

    distilled, history = diffprune.distill(
        result.pipeline, pipeline, diffprune.DistillSettings(steps=2, batch_size=2), calibration, show_progress=False
    )
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(step["loss"])) for step in history)
    moved = [
        name
        for (name, new), old in zip(distilled.transformer.state_dict().items(), cut.state_dict().values(), strict=True)
        if not torch.equal(new, old)
    ]
    assert moved  # the student trained
    folder = tmp_path / "distilled"
    diffprune.PruneResult(distilled, result.removed, result.scores, result.report).save(folder)
    # (Whole-pipeline latents would differ in bf16: transformers rebuilds Gemma's rotary frequencies in fp32 on
    # loading, where the in-memory pipeline's were cast to bf16.)
    reloaded = diffprune.load_pipeline(str(folder), torch_dtype=torch.bfloat16).transformer
    assert type(reloaded) is type(distilled.transformer)
    assert reloaded.config.removed_units == distilled.transformer.config.removed_units
    inputs = example_inputs(reloaded, batch_size=2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).sample, distilled.transformer(**inputs).sample, rtol=0, atol=0)


def test_the_cli_prunes_a_lumina2_pipeline_by_depth(lumina, tmp_path, capsys):
    source = tmp_path / "lumina"
    lumina.save_pretrained(source)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    out = tmp_path / "cut"
    argv = ["prune", str(source), "--num-units", "1", "--num-samples", "2", "--inference-steps", "2"]
    assert main([*argv, "--kinds", "transformer_block", "--prompts", str(prompts), "--out", str(out)]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert len(report["removed_units"]) == 1 and report["removed_units"][0].startswith("layers.")
    assert DiffusionPipeline.from_pretrained(out).transformer.config.num_layers == 2
