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
