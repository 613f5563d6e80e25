"""Stable Audio end to end, on a tiny StableAudioPipeline built offline as Stable Audio Open ships (T5, projection
model, StableAudioDiTModel, stereo Oobleck VAE at 44.1 kHz, CosineDPMSolverMultistepScheduler: an SDE sampler
whose step noise is seeded per sample): calibration is the pipeline's own sampling, prune with LD-Pruner and with
a loss (v-diffusion training noise), evaluate with CLAP, FID on mel images and MACs, distill, save, reload (a
depth cut with stock diffusers in an interpreter without diffprune), the CLI, and a comparison with stereo WAVs."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from tiny_evaluation_models import tiny_clap
from tiny_stable_audio import tiny_stable_audio_pipeline
from untouched import assert_untouched, snapshot

import diffprune
from diffprune.cli import main
from diffprune.evaluation.metrics.feature_networks import FeatureClassifier
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.models.generation import final_latents

# torchsde warns that the sampler's last sigmas (0.3, then 0) lie at or below its Brownian tree's start: the
# scheduler as diffusers ships it.
pytestmark = pytest.mark.filterwarnings("ignore:Should have:UserWarning")

PROMPTS = ["a dog", "rain"]
CALIBRATION = dict(num_samples=2, num_inference_steps=2, prompts=PROMPTS, show_progress=False)


@pytest.fixture(scope="module")
def stable_audio():
    pipeline = tiny_stable_audio_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _generators():
    return [torch.Generator().manual_seed(seed) for seed in range(len(PROMPTS))]


def test_calibration_latents_are_the_pipelines_own_guided_sde_samples(stable_audio):
    latents = final_latents(stable_audio, PROMPTS, _generators(), num_inference_steps=2)
    expected = stable_audio(prompt=PROMPTS, generator=_generators(), num_inference_steps=2, output_type="latent")
    torch.testing.assert_close(latents, expected.audios, rtol=0, atol=0)
    adapter = adapter_for(stable_audio, CalibrationSettings(**CALIBRATION))
    variants = adapter.final_latents(3)  # no gates: three identical variants, one Brownian tree per seed
    for variant in (1, 2):  # up to float rounding of batched kernels; other step noise would be O(1)
        torch.testing.assert_close(variants[:, variant], variants[:, 0], rtol=0, atol=1e-5)
    torch.testing.assert_close(variants[:, 0], latents, rtol=0, atol=1e-5)


def test_a_loss_criterion_prunes_blocks_and_branches_of_a_bf16_pipeline_and_distillation_recovers(tmp_path):
    pipeline = tiny_stable_audio_pipeline().to(torch.bfloat16)
    pipeline.set_progress_bar_config(disable=True)
    before = snapshot(pipeline)
    calibration = CalibrationSettings(**CALIBRATION)
    result = diffprune.prune(
        pipeline, "output-loss", diffprune.Budget(num_units=3), calibration=calibration, show_progress=False
    )
    assert_untouched(before, pipeline)
    kinds = {unit["kind"] for unit in result.report["units"]}
    assert kinds == {"transformer_block", "self_attention", "cross_attention", "feed_forward"}
    scores = torch.tensor(list(result.scores.values()))
    assert torch.isfinite(scores).all() and len(set(scores.tolist())) == len(scores)
    cut = result.pipeline.transformer
    assert {p.dtype for p in cut.parameters()} == {torch.bfloat16}
    distilled, history = diffprune.distill(
        result.pipeline,
        pipeline,
        diffprune.DistillSettings(steps=2, batch_size=2, ema_decay=None),
        calibration,
        show_progress=False,
    )
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(step["loss"])) for step in history)
    changed = [
        name
        for name, weight in distilled.transformer.state_dict().items()
        if not torch.equal(weight, cut.state_dict()[name])
    ]
    assert changed  # the student trained
    folder = tmp_path / "distilled"
    diffprune.PruneResult(distilled, result.removed, result.scores, result.report).save(folder)
    reloaded = diffprune.load_pipeline(str(folder), torch_dtype=torch.bfloat16)
    assert type(reloaded.transformer) is type(cut) and reloaded.transformer.config.removed_units
    reloaded.set_progress_bar_config(disable=True)
    with torch.no_grad():
        latents = [
            p(prompt=PROMPTS, generator=_generators(), num_inference_steps=2, output_type="latent").audios
            for p in (distilled, reloaded)
        ]
    torch.testing.assert_close(latents[1], latents[0], rtol=0, atol=0)


def test_evaluate_scores_clap_fid_on_mel_images_and_macs(stable_audio, tmp_path):
    model, processor = tiny_clap()
    model.save_pretrained(tmp_path / "clap")
    processor.save_pretrained(tmp_path / "clap")
    cut = diffprune.remove_units(stable_audio.transformer, ["transformer_blocks.1"])
    from diffprune.models.components import with_denoiser

    torch.manual_seed(0)
    report = diffprune.evaluate(
        with_denoiser(stable_audio, cut),
        reference=stable_audio,
        metrics="clap,fid,macs",
        num_samples=4,
        prompts=PROMPTS,
        num_inference_steps=2,
        clap_model=str(tmp_path / "clap"),
        fid_features=FeatureClassifier(image_size=16).eval(),
        show_progress=False,
    )
    results, reference = report["results"], report["reference_results"]
    assert results["clap_score"] != reference["clap_score"]  # the cut sounds different to CLAP
    assert results["fid"]["vs_reference"] > 0
    assert results["macs"] < reference["macs"]


# A fresh interpreter that cannot import diffprune: stock diffusers loads the depth cut and samples as the cut did.
WITHOUT_DIFFPRUNE = """
import sys
sys.modules["diffprune"] = None
import torch
from diffusers import StableAudioDiTModel, StableAudioPipeline
from safetensors.torch import load_file

folder, expected = sys.argv[1], load_file(sys.argv[2])["latents"]
pipeline = StableAudioPipeline.from_pretrained(folder)
assert type(pipeline.transformer) is StableAudioDiTModel and pipeline.transformer.config.num_layers == 3
generators = [torch.Generator().manual_seed(seed) for seed in range(2)]
with torch.no_grad():
    latents = pipeline(prompt=["a dog", "rain"], generator=generators, num_inference_steps=2, output_type="latent")
torch.testing.assert_close(latents.audios, expected, rtol=0, atol=1e-5)
print("ok")
"""


def test_the_cli_prunes_by_depth_stock_diffusers_reloads_it_and_compare_plays_stereo_wavs(stable_audio, tmp_path):
    from scipy.io import wavfile

    source = tmp_path / "stable-audio"
    stable_audio.save_pretrained(source)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    out = tmp_path / "cut"
    argv = ["prune", str(source), "--criterion", "ld-pruner", "--num-units", "1", "--num-samples", "2"]
    depth = ["--kinds", "transformer_block", "--inference-steps", "2", "--prompts", str(prompts)]
    assert main([*argv, *depth, "--out", str(out)]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    scores = [unit["score"] for unit in report["units"]]
    assert len(report["removed_units"]) == 1 and len(set(scores)) == len(scores) == 4  # each block scored
    assert report["family"] == "text-to-audio" and report["kept_fraction"]["macs"] < 1

    cut = diffprune.load_pipeline(str(out))
    cut.set_progress_bar_config(disable=True)
    with torch.no_grad():
        latents = cut(prompt=PROMPTS, generator=_generators(), num_inference_steps=2, output_type="latent").audios
    save_file({"latents": latents.contiguous()}, tmp_path / "expected.safetensors")
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_DIFFPRUNE, str(out), str(tmp_path / "expected.safetensors")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
        timeout=600,
    )
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]

    comparison = tmp_path / "cmp"
    compare = ["compare", str(source), str(out), "--prompts", str(prompts), "--num-samples", "2"]
    assert main([*compare, "--inference-steps", "2", "--metrics", "macs", "--out", str(comparison)]) == 0
    rate, samples = wavfile.read(next((comparison / "audio").glob("*/seed-1.wav")))
    assert rate == 44100 and samples.shape == (64, 2) and samples.dtype.name == "int16"
    page = (comparison / "report.html").read_text()
    assert page.count("<audio") == 4 and "data:audio/wav;base64," in page
