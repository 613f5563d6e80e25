"""evaluate() / run_evaluation(): same seeds through every model; FID, latency and costs side by side."""

import json

import pytest
import torch
from PIL import Image
from tiny_evaluation_models import tiny_audioldm_pipeline, tiny_clap
from tiny_models import tiny_ddpm_pipeline
from untouched import assert_untouched, snapshot

import diffprune
from diffprune.errors import DiffpruneError
from diffprune.evaluation.latency import LatencySettings
from diffprune.evaluation.metrics.feature_networks import FeatureClassifier
from diffprune.evaluation.running import bundled_name_of, run_evaluation
from diffprune.evaluation.settings import EvaluationSettings, parse_metrics
from diffprune.evaluation.tables import format_table, summary_row
from diffprune.models import zoo

FAST_LATENCY = LatencySettings(runs=2, warmup=0, num_inference_steps=1)


@pytest.fixture
def dense(ddpm):
    return ddpm


@pytest.fixture
def pruned(ddpm_cut):
    return ddpm_cut


@pytest.fixture(scope="module")
def features():
    torch.manual_seed(0)
    return FeatureClassifier(image_size=16).eval()  # random weights: a fixed feature map is all FID needs here


def settings(**overrides):
    values = dict(num_samples=6, num_inference_steps=3, latency=FAST_LATENCY, show_progress=False)
    values.update(overrides)
    return EvaluationSettings(**values)


def test_fid_against_itself_is_zero_and_grows_when_a_unit_is_removed(dense, pruned, features):
    models = {"dense": dense, "same weights": tiny_ddpm_pipeline(), "pruned": pruned}
    run = run_evaluation(models, "dense", settings(metrics="fid", fid_features=features))
    same = run.rows["same weights"]["fid"]["vs_reference"]
    cut = run.rows["pruned"]["fid"]["vs_reference"]
    assert same == pytest.approx(0.0, abs=1e-9)
    assert cut > 1e-5 and cut > 1000 * max(same, 1e-12)
    assert "vs_reference" not in run.rows["dense"]["fid"]
    assert len(run.generated["pruned"]) == 6 and run.seeds == list(range(6))


def test_evaluate_reports_costs_latency_and_speedup_and_leaves_its_inputs_alone(dense, pruned, features, tmp_path):
    out = tmp_path / "report.json"
    before = snapshot(pruned), snapshot(dense)
    report = diffprune.evaluate(
        pruned,
        reference=dense,
        metrics="fid,latency,macs",
        num_samples=3,
        out=out,
        num_inference_steps=1,
        fid_features=features,
        latency=FAST_LATENCY,
        show_progress=False,
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert_untouched(before[0], pruned)
    assert_untouched(before[1], dense)
    results, reference = report["results"], report["reference_results"]
    assert results["params"] < reference["params"] and results["macs"] < reference["macs"]
    for part in ("denoiser_forward", "pipeline"):
        timing = results["latency"][part]
        assert timing["median_ms"] > 0 and timing["min_ms"] > 0
        assert 0 <= timing["iqr_ms"] <= timing["max_ms"] - timing["min_ms"]  # a spread inside the range
        assert timing["runs"] == 2 and timing["batch_size"] == 1 and timing["dtype"] == "float32"
        assert results["speedup"][part] > 0 and results["speedup"][f"realisation_ratio_{part}"] > 0
    assert results["speedup"]["predicted_from_macs"] == pytest.approx(reference["macs"] / results["macs"])
    assert 0 < results["fid"]["vs_reference"] < float("inf")  # the cut draws other images
    assert report["scored_with"]["fid"] == "FeatureClassifier"
    table = format_table([summary_row("dense", reference), summary_row("pruned", results)])
    assert "fid_vs_reference" in table and "pruned" in table


def test_fid_against_a_folder_of_real_images(dense, features, tmp_path):
    generator = torch.Generator().manual_seed(0)
    for index in range(4):
        pixels = torch.randint(0, 255, (20, 20), dtype=torch.uint8, generator=generator).numpy()
        Image.fromarray(pixels).save(tmp_path / f"real-{index}.png")  # another size: brought to 16x16
    report = diffprune.evaluate(
        dense,
        metrics=["fid"],
        num_samples=3,
        real_images=str(tmp_path),
        num_inference_steps=2,
        fid_features=features,
        show_progress=False,
    )
    assert report["results"]["fid"]["vs_real_images"] > 0
    assert report["results"]["fid"]["real_images"] == 4


@pytest.mark.filterwarnings("ignore::UserWarning")  # librosa: a tiny vocoder's clips leave some mel bands empty
def test_text_to_audio_is_scored_with_clap_from_a_folder(tmp_path):
    model, processor = tiny_clap()
    model.save_pretrained(tmp_path / "clap")
    processor.save_pretrained(tmp_path / "clap")
    run = run_evaluation(
        {"audio": tiny_audioldm_pipeline()},
        None,
        settings(
            metrics="clap",
            num_samples=2,
            num_inference_steps=2,
            clap_model=str(tmp_path / "clap"),
            prompts=["a dog", "rain"],
        ),
    )
    assert 0 <= run.rows["audio"]["clap_score"] <= 100
    assert run.scorers["clap"] == str(tmp_path / "clap") and run.prompts == ["a dog", "rain"]


def test_default_metrics_follow_the_family(dense, pruned, features):
    run = run_evaluation(
        {"dense": dense, "pruned": pruned},
        "dense",
        settings(
            num_samples=2,
            num_inference_steps=1,
            fid_features=features,
            latency=LatencySettings(runs=1, warmup=0, measure_pipeline=False),
        ),
    )
    assert run.metrics == ("fid", "latency", "macs")
    alone = run_evaluation(
        {"dense": dense},
        None,
        settings(metrics=None, num_samples=2, latency=LatencySettings(runs=1, warmup=0, measure_pipeline=False)),
    )
    assert alone.metrics == ("latency", "macs") and not alone.generated


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"metrics": "fid,sharpness"}, "unknown metric 'sharpness'"),
        ({"metrics": "fid", "num_samples": 1}, "at least 2 samples"),
        ({"real_images": "/nonexistent/folder"}, "is not a folder"),
        ({"fid_weights": "/nonexistent/weights.pth"}, "is not a file"),
        ({"dtype": "fp16", "device": "cpu"}, "fp16 needs a GPU"),
    ],
)
def test_bad_settings_are_one_line_errors(overrides, message):
    with pytest.raises(DiffpruneError, match=message) as error:
        settings(**overrides)
    assert "\n" not in str(error.value)


def test_metrics_that_do_not_apply_are_refused(dense):
    with pytest.raises(DiffpruneError, match="needs a text-to-image pipeline"):
        run_evaluation({"dense": dense}, None, settings(metrics="clip"))
    with pytest.raises(DiffpruneError, match="pass `reference` \\(a model\\) or `real_images`"):
        run_evaluation({"dense": dense}, None, settings(metrics="fid"))
    with pytest.raises(DiffpruneError, match="not among the models"):
        run_evaluation({"dense": dense}, "other", settings(metrics="macs"))


def test_parse_metrics():
    assert parse_metrics(" FID, latency,fid ") == ("fid", "latency")
    assert parse_metrics(None) is None
    with pytest.raises(DiffpruneError, match="no metrics"):
        parse_metrics(",")


def test_bundled_models_are_recognised_by_name_or_folder():
    assert bundled_name_of("digits-t2i") == "digits-t2i"
    assert bundled_name_of("/somewhere/else") is None
    assert bundled_name_of(str(zoo.models_dir() / "digits-ddpm")) == "digits-ddpm"
    assert bundled_name_of(diffprune.load_pipeline("digits-ddpm")) == "digits-ddpm"  # the bundle is in the repo


def test_timed_pipeline_calls_use_the_generation_steps_unless_told_otherwise():
    assert EvaluationSettings(num_inference_steps=7).latency.num_inference_steps == 7
    assert EvaluationSettings(num_inference_steps=7, latency={"runs": 3}).latency.num_inference_steps == 7
    assert (
        EvaluationSettings(num_inference_steps=7, latency={"num_inference_steps": 2}).latency.num_inference_steps == 2
    )
