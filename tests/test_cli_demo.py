"""`diffprune demo` argument checks (the full demo is what `make demo` runs; it is too slow for the suite)."""

from diffprune.cli import main


def test_unknown_model_and_unreachable_budget_fail_before_any_work(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "a"), "--models", "nope"]) == 2
    assert "the demo knows" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "b"), "--models", "digits-t2i", "--keep-macs", "0.2"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("diffprune: error: digits-t2i: cannot keep 20% of the denoiser's MACs")
    assert not (tmp_path / "b").exists()


def test_existing_output_folder_is_refused(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "index.html").write_text("earlier run")
    assert main(["demo", "--out", str(tmp_path / "out")]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert (tmp_path / "out" / "index.html").read_text() == "earlier run"


def test_the_demo_page_shows_a_timing_problem_as_a_note_not_as_a_speedup(tmp_path):
    from argparse import Namespace

    from diffprune.cli.demo import write_index

    (tmp_path / "digits-sd3-pruned").mkdir()
    problem = "the pipeline saved 183.0 ms per call but its 20 denoiser calls can save at most 36.0 ms"
    rows = [
        {"model": "digits-sd3 (original)", "latency_ms": 478.5, "speedup": None},
        {"model": "digits-sd3 pruned", "latency_ms": 295.9, "speedup": None, "timing_problem": problem},
    ]
    comparison = {"columns": ["model", "latency_ms", "speedup", "timing_problem"], "rows": rows, "files": {}}
    sections = [{"name": "digits-sd3", "pruned": tmp_path / "digits-sd3-pruned", "comparison": comparison}]
    page = write_index(tmp_path, sections, Namespace(criterion="ld-pruner", keep_macs=0.7)).read_text()
    assert "<td>see note</td>" in page and 'class="note"' in page and "183.0 ms" in page
    assert "digits-sd3 pruned: pipeline speedup not reported, a measurement problem" in page


def test_the_demo_page_embeds_each_grid_and_links_the_reports_inside_the_output(tmp_path):
    from argparse import Namespace

    from PIL import Image

    from diffprune.cli.demo import write_index

    comparison_folder = tmp_path / "digits-ddpm-comparison"
    comparison_folder.mkdir()
    Image.new("RGB", (4, 4), "red").save(comparison_folder / "grid.png")
    (comparison_folder / "report.html").write_text("<html></html>")
    files = {"grid": str(comparison_folder / "grid.png"), "html": str(comparison_folder / "report.html")}
    comparison = {"columns": ["model"], "rows": [{"model": "digits-ddpm pruned"}], "files": files}
    sections = [{"name": "digits-ddpm", "pruned": tmp_path / "digits-ddpm-pruned", "comparison": comparison}]
    page = write_index(tmp_path, sections, Namespace(criterion="magnitude", keep_macs=0.6)).read_text()
    assert "<title>diffprune demo: magnitude to 60% of the denoiser&#x27;s MACs</title>" in page
    assert 'src="data:image/png;base64,' in page and "<td>digits-ddpm pruned</td>" in page
    assert "href='digits-ddpm-comparison/report.html'" in page and "href='digits-ddpm-pruned/README.md'" in page
