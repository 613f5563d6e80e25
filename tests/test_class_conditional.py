"""Class-conditional pipelines (DiT) through calibration, losses, prune, distill and evaluate, on a tiny DiT
pipeline built as DiT ships (1000 classes with a null class for guidance, learnt variance, ImageNet label names)
with the DPM-Solver its documentation swaps in: calibration latents are the pipeline's own, the losses call the
transformer as the pipeline does, and the cut reloads."""

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from tiny_transformers import tiny_dit_pipeline
from untouched import assert_untouched, snapshot

import diffprune
from diffprune.cli import main
from diffprune.errors import DiffpruneError
from diffprune.models.adapters import CalibrationSettings
from diffprune.models.generation import CLASS_CONDITIONAL_IMAGE, final_latents, generate, pipeline_family
from diffprune.models.prompts import default_prompts

CALIBRATION = dict(num_samples=4, num_inference_steps=3, prompts=["goldfish", "207", "tench", "5"])


@pytest.fixture(scope="module")
def dit():
    pipeline = tiny_dit_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_class_labels_are_names_or_ids_and_defaults_spread_over_the_classes(dit):
    assert pipeline_family(dit) == CLASS_CONDITIONAL_IMAGE
    labels = default_prompts(dit)
    assert len(labels) == 32 and labels[0] == "tench" and labels[1] == "31"  # the shortest name, else the id
    with pytest.raises(DiffpruneError, match="'zebra' is not a class.*label names or an integer id"):
        generate(dit, prompts=["zebra"], seeds=[0], num_inference_steps=2, show_progress=False)
    with pytest.raises(DiffpruneError, match="class id 1000 is out of range"):
        generate(dit, prompts=["1000"], seeds=[0], num_inference_steps=2, show_progress=False)


def test_calibration_latents_decode_to_the_pipelines_own_images(dit):
    generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
    latents = final_latents(dit, ["goldfish", "207"], generators, num_inference_steps=3)
    generators = [torch.Generator().manual_seed(seed) for seed in (0, 1)]
    expected = dit(class_labels=[1, 207], generator=generators, num_inference_steps=3, output_type="np").images
    with torch.no_grad():
        images = dit.vae.decode(latents / dit.vae.config.scaling_factor).sample
    images = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(images, expected, atol=1e-5)


@pytest.mark.parametrize("criterion", ["ld-pruner", "output-loss", "gradflow"])
def test_criteria_prune_a_dit_pipeline_and_the_cut_reloads(dit, criterion, tmp_path):
    before = snapshot(dit)
    result = diffprune.prune(
        dit,
        criterion,
        diffprune.Budget(keep_macs=0.7),
        calibration=CalibrationSettings(**CALIBRATION, show_progress=False),
        show_progress=False,
    )
    assert_untouched(before, dit)
    assert result.report["kept_fraction"]["macs"] <= 0.7
    assert len(set(result.scores.values())) > 1 and all(np.isfinite(list(result.scores.values())))
    reloaded = diffprune.load_pipeline(str(result.save(tmp_path / "cut")))
    reloaded.set_progress_bar_config(disable=True)
    images = [
        p(
            class_labels=[207], generator=torch.Generator().manual_seed(0), num_inference_steps=2, output_type="np"
        ).images
        for p in (result.pipeline, reloaded)
    ]
    np.testing.assert_array_equal(images[0], images[1])


def test_a_depth_cut_of_dit_distils_and_reloads_with_stock_diffusers(dit, tmp_path):
    result = diffprune.prune(
        dit,
        "output-loss",
        diffprune.Budget(num_units=1),
        calibration=CalibrationSettings(**CALIBRATION, show_progress=False),
        show_progress=False,
        unit_filter=diffprune.is_depth_unit,
    )
    distilled, history = diffprune.distill(
        result.pipeline,
        dit,
        diffprune.DistillSettings(steps=3, batch_size=2),
        CalibrationSettings(**CALIBRATION, show_progress=False),
        show_progress=False,
    )
    assert len(history) == 3 and all(np.isfinite([row["loss"] for row in history]))
    folder = tmp_path / "cut"
    diffprune.PruneResult(distilled, result.removed, result.scores, result.report).save(folder)
    reloaded = DiffusionPipeline.from_pretrained(folder)  # stock classes only
    assert reloaded.transformer.config.num_layers == 3


def test_a_bf16_dit_pipeline_prunes_with_a_loss_in_bf16():
    pipeline = tiny_dit_pipeline().to(torch.bfloat16)
    result = diffprune.prune(
        pipeline,
        "output-loss",
        diffprune.Budget(num_units=2),
        calibration=CalibrationSettings(**CALIBRATION, show_progress=False),
        show_progress=False,
    )
    assert {p.dtype for p in result.pipeline.transformer.parameters()} == {torch.bfloat16}
    assert all(np.isfinite(list(result.scores.values())))


def test_the_cli_prunes_and_evaluates_a_dit_pipeline(dit, tmp_path, capsys):
    source = tmp_path / "dit"
    dit.save_pretrained(source)
    # As facebook/DiT-XL-2-256 ships: the class names in model_index.json (save_pretrained leaves them out).
    index = json.loads((source / "model_index.json").read_text())
    index["id2label"] = {"0": "tench, Tinca tinca", "1": "goldfish, Carassius auratus", "207": "golden retriever"}
    (source / "model_index.json").write_text(json.dumps(index))
    labels = tmp_path / "labels.txt"
    labels.write_text("goldfish\n207\n")
    out = tmp_path / "cut"
    fast = ["--num-samples", "2", "--inference-steps", "2", "--prompts", str(labels)]
    assert main(["prune", str(source), "--keep-macs", "0.8", "--out", str(out), *fast]) == 0
    report_path = tmp_path / "eval.json"
    argv = ["eval", str(out), "--reference", str(source), "--metrics", "macs", "--out", str(report_path)]
    assert main([*argv, *fast]) == 0
    report = json.loads(report_path.read_text())
    assert report["results"]["macs"] < report["reference_results"]["macs"]
    assert diffprune.load_pipeline(str(out)).labels["goldfish"] == 1  # the cut keeps the class names
