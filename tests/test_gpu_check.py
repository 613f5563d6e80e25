"""eval/gpu_check.py, the GPU check in one command: its CPU dry run goes through every part (tiny shapes) and
writes the JSON and the markdown; the wheel tags and the report of a round stopped at its limit are checked on
their own."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))

import gpu_check  # noqa: E402


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    results_before = (ROOT / "docs" / "results.md").read_text()
    command = [sys.executable, str(ROOT / "eval" / "gpu_check.py"), "--dry-run", "--out-dir", str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert (ROOT / "docs" / "results.md").read_text() == results_before, "a dry run leaves docs/results.md alone"
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def test_dry_run_goes_through_every_part_and_writes_json_and_markdown(dry_run):
    result, markdown = dry_run
    assert result["dry_run"] and list(result["parts"]) == list(gpu_check.SHARES)
    assert result["preflight"]["unsatisfied"] == [] and result["preflight"]["versions"]["diffusers"]
    tests = result["parts"]["tests"]
    assert tests["ok"] and tests["counts"]["tests"] >= 6 and tests["counts"]["failures"] == 0
    eager = result["parts"]["speedup-eager"]
    assert eager["ok"] and not eager["timed_out"]
    rows = eager["benchmark"]["rows"]
    assert [(row["set"], row["batch_size"]) for row in rows] == [
        ("dense", 1),
        ("greedy 0.7 MACs", 1),
        ("dense", 2),
        ("greedy 0.7 MACs", 2),
    ]
    cut = rows[1]
    assert (
        cut["latency"]["pipeline"]["denoiser_calls"] > 0 and cut["speedup"]["ratios"]["denoiser_forward"]["rounds"] == 2
    )
    assert "compil" in result["parts"]["speedup-compiled"]["skipped"]
    adaptive, exhaustive = result["parts"]["ld-pruner-adaptive"], result["parts"]["ld-pruner-exhaustive"]
    if "skipped" in adaptive:  # an LDPruner without the allocation option: both are skipped, saying why
        assert "allocation option" in adaptive["skipped"] and "allocation option" in exhaustive["skipped"]
    else:
        assert adaptive["ok"] and len(adaptive["removed_units"]) == 3 and adaptive["denoiser_calls"] > 0
        assert "same code path" in exhaustive["skipped"]
    assert markdown.startswith("## GPU check (dry run") and "GPU tests (tests/test_gpu.py" in markdown
    assert result["sections"]["gpu-check"] in markdown
    assert "sd15-speedup-gpu" not in result["sections"]  # a dry run has no numbers to quote


def test_wheels_are_checked_against_the_gpu_machines_python_and_platform():
    assert gpu_check.wheel_fits("diffusers-0.42.1-py3-none-any.whl")
    assert gpu_check.wheel_fits("regex-2026.11.19-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert not gpu_check.wheel_fits("regex-2026.11.19-cp311-cp311-manylinux_2_17_x86_64.whl")
    assert not gpu_check.wheel_fits("regex-2026.11.19-cp312-cp312-manylinux_2_17_aarch64.whl")
    assert not gpu_check.wheel_fits("regex-2026.11.19-cp312-cp312-macosx_11_0_arm64.whl")


def test_a_round_stopped_at_its_limit_is_reported_with_the_whole_rounds_pace():
    stopped = {"timed_out": True, "limit_s": 90, "returncode": -9, "units_scored": 10, "ok": False}
    stopped.update({"scoring_seconds": 60.0, "extrapolated_round_seconds": 534, "denoiser_calls": 800})
    result = {
        "command": "python eval/gpu_check.py",
        "dry_run": False,
        "budget_s": 480,
        "wall_s": 470.0,
        "hardware": {"gpu": "NVIDIA H100", "gpu_memory_gib": 79.6, "driver": "580", "cuda": "13.0"}
        | {"torch": "2.11.0", "python": "3.12.3", "cpu": "x86", "cpu_count": 16},
        "preflight": {"unsatisfied": []},
        "parts": {"ld-pruner-adaptive": {"skipped": "LDPruner has no allocation option here"}}
        | {"ld-pruner-exhaustive": stopped},
    }
    text = gpu_check.sections(result)["gpu-check"]
    assert "NVIDIA H100" in text
    assert "| exhaustive | no | 60.0 | 800 |" in text
    assert "stopped at the 90 s limit after 10 scored units; the whole round at that pace: about 534 s" in text
    assert "| adaptive | no |" in text and "no allocation option" in text
