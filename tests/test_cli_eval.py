"""`diffprune eval` and `diffprune compare` from the command line: reports on success, one-line errors (exit 2)."""

import json
import subprocess
import sys

import pytest
import torch
from diffusers import DDPMPipeline
from tiny_models import tiny_ddpm_pipeline

import diffprune
from diffprune.cli import main
from diffprune.evaluation.metrics.feature_networks import FeatureClassifier

FAST = ["--inference-steps", "1", "--latency-runs", "1", "--latency-warmup", "0"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    dense = tiny_ddpm_pipeline()
    dense.save_pretrained(root / "dense")
    DDPMPipeline(unet=diffprune.remove_units(dense.unet, ["mid_block"]), scheduler=dense.scheduler).save_pretrained(
        root / "pruned"
    )
    torch.manual_seed(0)
    FeatureClassifier().save_pretrained(root / "features")
    return root


def test_eval_writes_a_json_report(folders, tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = [
        "eval",
        str(folders / "pruned"),
        "--reference",
        str(folders / "dense"),
        "--metrics",
        "fid,latency,macs",
        "--num-samples",
        "2",
        "--fid-features",
        str(folders / "features"),
        "--out",
        str(out),
        *FAST,
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert 0 < report["results"]["fid"]["vs_reference"] < float("inf")  # the cut draws other images
    assert report["results"]["speedup"]["predicted_from_macs"] > 1
    assert report["scored_with"]["fid"] == str(folders / "features")
    printed = capsys.readouterr().out
    assert "fid_vs_reference" in printed and f"wrote {out}" in printed


def test_compare_writes_grid_and_html(folders, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = [
        "compare",
        str(folders / "dense"),
        str(folders / "pruned"),
        "--num-samples",
        "2",
        "--metrics",
        "macs",
        "--out",
        str(out),
        *FAST,
    ]
    assert main(argv) == 0
    assert {path.name for path in out.iterdir()} == {"grid.png", "report.html", "report.json", "samples"}
    assert "report.html" in capsys.readouterr().out


def _error_of(argv, capsys):
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffprune: error:"), lines
    return lines[0]


def test_missing_reference(folders, tmp_path, capsys):
    error = _error_of(
        ["eval", str(folders / "pruned"), "--reference", str(tmp_path / "nope"), "--metrics", "macs"], capsys
    )
    assert "no such folder" in error


def test_missing_real_images_folder(folders, tmp_path, capsys):
    error = _error_of(
        ["eval", str(folders / "pruned"), "--real-images", str(tmp_path / "nope"), "--metrics", "fid"], capsys
    )
    assert "--real-images" in error and "not a folder" in error


def test_unknown_metric(folders, capsys):
    assert "unknown metric 'beauty'" in _error_of(["eval", str(folders / "pruned"), "--metrics", "fid,beauty"], capsys)


def test_fid_without_anything_to_compare_with(folders, capsys):
    error = _error_of(["eval", str(folders / "pruned"), "--metrics", "fid", "--num-samples", "2"], capsys)
    assert "--reference" in error and "--real-images" in error


def test_clip_on_an_unconditional_model(folders, capsys):
    assert "text-to-image" in _error_of(["eval", str(folders / "pruned"), "--metrics", "clip"], capsys)


def test_existing_output_folder(folders, tmp_path, capsys):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "old.txt").write_text("previous results")
    error = _error_of(
        ["compare", str(folders / "dense"), str(folders / "pruned"), "--out", str(tmp_path / "cmp")], capsys
    )
    assert "already holds results" in error


def test_compare_needs_two_models(folders, tmp_path, capsys):
    assert "at least two models" in _error_of(["compare", str(folders / "dense"), "--out", str(tmp_path / "c")], capsys)


def test_eval_out_that_is_a_folder(folders, tmp_path, capsys):
    error = _error_of(["eval", str(folders / "pruned"), "--metrics", "macs", "--out", str(tmp_path)], capsys)
    assert "is a folder" in error


def test_errors_exit_2_without_traceback(folders, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "diffprune", "eval", str(folders / "pruned"), "--metrics", "fid,beauty"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("diffprune: error: unknown metric")
