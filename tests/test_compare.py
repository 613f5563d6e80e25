"""compare_and_report: a labelled grid (models x samples), samples, WAVs for audio, a self-contained HTML page."""

import base64
import io
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image
from tiny_evaluation_models import tiny_audio_diffusion_pipeline
from tiny_models import tiny_sd_pipeline
from untouched import assert_untouched

from diffprune.errors import DiffpruneError
from diffprune.evaluation.comparison import compare_and_report
from diffprune.evaluation.grids import CELL, grid_size
from diffprune.evaluation.latency import LatencySettings

FAST = dict(
    num_inference_steps=1, latency=LatencySettings(runs=1, warmup=0, num_inference_steps=1), show_progress=False
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def ddpm_comparison(_shared_ddpm, _shared_ddpm_cut, tmp_path_factory):
    (dense, dense_before), (pruned, pruned_before) = _shared_ddpm, _shared_ddpm_cut
    out = tmp_path_factory.mktemp("comparison") / "cmp"
    summary = compare_and_report({"dense": dense, "pruned": pruned}, "dense", out, num_samples=3, **FAST)
    assert_untouched(dense_before, dense)
    assert_untouched(pruned_before, pruned)
    return out, summary


def test_grid_has_one_column_per_model_and_one_row_per_sample(ddpm_comparison):
    out, summary = ddpm_comparison
    with Image.open(out / "grid.png") as grid:
        assert grid.size == grid_size(rows=3, columns=2)
    assert [row["model"] for row in summary["rows"]] == ["dense", "pruned"]
    assert sorted(path.name for path in (out / "samples" / "pruned").iterdir()) == [
        "seed-0.png",
        "seed-1.png",
        "seed-2.png",
    ]


def test_summary_table_and_json(ddpm_comparison):
    out, summary = ddpm_comparison
    dense, pruned = summary["rows"]
    assert pruned["params"] < dense["params"] and pruned["macs"] < dense["macs"]
    assert pruned["latency_ms"] > 0 and pruned["speedup"] > 0 and pruned["predicted_speedup"] > 1
    assert dense["speedup"] is None
    assert "pruned" in summary["table"] and "latency_ms" in summary["table"]
    report = json.loads((out / "report.json").read_text())
    assert report["summary"] == json.loads(json.dumps(summary["rows"]))
    assert report["models"]["pruned"]["latency"]["denoiser_forward"]["median_ms"] > 0


def test_html_is_self_contained(ddpm_comparison):
    out, _ = ddpm_comparison
    page = (out / "report.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(source.startswith("data:") for source in sources)
    grid_uri = next(source for source in sources if source.startswith("data:image/png;base64,"))
    Image.open(io.BytesIO(base64.b64decode(grid_uri.split(",", 1)[1]))).verify()
    assert "<table>" in page and "pruned" in page


def test_nothing_half_written_and_existing_results_refused(ddpm, ddpm_comparison, tmp_path):
    out, _ = ddpm_comparison
    assert not [path for path in out.parent.iterdir() if ".staging-" in path.name]
    with pytest.raises(DiffpruneError, match="already holds results"):
        compare_and_report({"a": ddpm}, None, out, num_samples=2, metrics="macs", **FAST)


def test_failed_comparison_leaves_no_folder(ddpm, tmp_path):
    out = tmp_path / "cmp"
    with pytest.raises(DiffpruneError, match="unknown metric"):
        compare_and_report({"a": ddpm}, None, out, metrics="speed", **FAST)
    with pytest.raises(DiffpruneError, match="not among the models"):
        compare_and_report({"a": ddpm}, "b", out, metrics="macs", **FAST)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_text_to_image_rows_are_prompts(sd, tmp_path):
    prompts = ["a one", "a two"]
    summary = compare_and_report(
        {"first": sd, "second": tiny_sd_pipeline()}, "first", tmp_path / "cmp", prompts=prompts, metrics="macs", **FAST
    )
    assert summary["report"]["prompts"] == prompts
    with Image.open(tmp_path / "cmp" / "grid.png") as grid:
        assert grid.size == grid_size(rows=2, columns=2)
        # the two identical models drew the same samples: their cells are identical
        first = grid.crop((grid_size(0, 0)[0], grid_size(0, 0)[1], grid_size(0, 1)[0] - 4, grid_size(1, 0)[1] - 4))
        second = grid.crop((grid_size(0, 1)[0], grid_size(0, 0)[1], grid_size(0, 2)[0] - 4, grid_size(1, 0)[1] - 4))
        assert first.size == (CELL, CELL) and list(first.getdata()) == list(second.getdata())


def test_audio_comparison_writes_wavs_and_players(tmp_path):
    from scipy.io import wavfile

    out = tmp_path / "cmp"
    compare_and_report(
        {"a": tiny_audio_diffusion_pipeline(), "b": tiny_audio_diffusion_pipeline()},
        "a",
        out,
        num_samples=2,
        metrics="macs",
        **FAST,
    )
    rate, samples = wavfile.read(out / "audio" / "b" / "seed-1.wav")
    assert rate == 8000 and samples.dtype.name == "int16" and len(samples) > 0
    page = (out / "report.html").read_text()
    assert page.count("<audio") == 4 and "data:audio/wav;base64," in page


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium) - HTML not rendered"
)
def test_html_renders_in_headless_chromium(ddpm_comparison, tmp_path):
    out, _ = ddpm_comparison
    screenshot = tmp_path / "page.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        command + ["--dump-dom", (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<table>" in dom.stdout and "pruned" in dom.stdout and 'class="grid"' in dom.stdout
    shot = subprocess.run(
        command + ["--window-size=900,900", f"--screenshot={screenshot}", (out / "report.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    with Image.open(screenshot) as image:
        colours = image.convert("L").getextrema()
    assert colours[0] < 100 < colours[1], "the page rendered blank"
