"""`diffprune eval` and `diffprune compare` from the command line: reports on success, one-line errors (exit 2)."""

import json
import subprocess
import sys

import pytest
import torch
from cli_errors import one_line_error

from diffprune.cli import main
from diffprune.evaluation.metrics.feature_networks import FeatureClassifier

FAST = ["--inference-steps", "1", "--latency-runs", "1", "--latency-warmup", "0"]


@pytest.fixture(scope="module")
def features_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    torch.manual_seed(0)
    FeatureClassifier().save_pretrained(folder)
    return folder


def test_eval_writes_a_json_report(ddpm_folder, ddpm_cut_folder, features_folder, tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = [
        "eval",
        str(ddpm_cut_folder),
        "--reference",
        str(ddpm_folder),
        "--metrics",
        "fid,latency,macs",
        "--num-samples",
        "2",
        "--fid-features",
        str(features_folder),
        "--out",
        str(out),
        *FAST,
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert 0 < report["results"]["fid"]["vs_reference"] < float("inf")  # the cut draws other images
    assert report["results"]["speedup"]["predicted_from_macs"] > 1
    assert report["scored_with"]["fid"] == str(features_folder)
    printed = capsys.readouterr().out
    assert "fid_vs_reference" in printed and f"wrote {out}" in printed


def test_compare_writes_grid_and_html(ddpm_folder, ddpm_cut_folder, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = [
        "compare",
        str(ddpm_folder),
        str(ddpm_cut_folder),
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


def test_missing_reference(ddpm_cut_folder, tmp_path, capsys):
    error = one_line_error(
        ["eval", str(ddpm_cut_folder), "--reference", str(tmp_path / "nope"), "--metrics", "macs"], capsys
    )
    assert "no such folder" in error


def test_missing_real_images_folder(ddpm_cut_folder, tmp_path, capsys):
    error = one_line_error(
        ["eval", str(ddpm_cut_folder), "--real-images", str(tmp_path / "nope"), "--metrics", "fid"], capsys
    )
    assert "--real-images" in error and "not a folder" in error


def test_unknown_metric(ddpm_cut_folder, capsys):
    assert "unknown metric 'beauty'" in one_line_error(
        ["eval", str(ddpm_cut_folder), "--metrics", "fid,beauty"], capsys
    )


def test_fid_without_anything_to_compare_with(ddpm_cut_folder, capsys):
    error = one_line_error(["eval", str(ddpm_cut_folder), "--metrics", "fid", "--num-samples", "2"], capsys)
    assert "--reference" in error and "--real-images" in error


def test_clip_on_an_unconditional_model(ddpm_cut_folder, capsys):
    assert "text-to-image" in one_line_error(["eval", str(ddpm_cut_folder), "--metrics", "clip"], capsys)


def test_existing_output_folder(ddpm_folder, ddpm_cut_folder, tmp_path, capsys):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "old.txt").write_text("previous results")
    error = one_line_error(["compare", str(ddpm_folder), str(ddpm_cut_folder), "--out", str(tmp_path / "cmp")], capsys)
    assert "already holds results" in error


def test_compare_needs_two_models(ddpm_folder, tmp_path, capsys):
    assert "at least two models" in one_line_error(["compare", str(ddpm_folder), "--out", str(tmp_path / "c")], capsys)


def test_eval_out_that_is_a_folder(ddpm_cut_folder, tmp_path, capsys):
    error = one_line_error(["eval", str(ddpm_cut_folder), "--metrics", "macs", "--out", str(tmp_path)], capsys)
    assert "is a folder" in error


def test_errors_exit_2_without_traceback(ddpm_cut_folder, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "diffprune", "eval", str(ddpm_cut_folder), "--metrics", "fid,beauty"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("diffprune: error: unknown metric")
