"""The recipe scripts in pipelines/ end to end on tiny pipelines saved to a folder: what a user's command writes
(the pruned pipeline that reloads, its report, the distilled cut, the comparison page) and the one-line errors."""

import json
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_sdxl_pipeline

import diffprune

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pipelines"))
import prune_flux  # noqa: E402
import prune_pixart  # noqa: E402
import prune_sdxl  # noqa: E402
import prune_stable_diffusion  # noqa: E402
import recipe  # noqa: E402

TINY = ["--num-units", "1", "--num-samples", "2", "--inference-steps", "1", "--device", "cpu"]
TINY_EVALUATION = ["--eval-samples", "2", "--eval-inference-steps", "1", "--metrics", "macs"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine two threads run them many
    times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-sdxl"
    tiny_sdxl_pipeline().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sd_run(sd_folder, tmp_path_factory):
    """prune_stable_diffusion.py with distillation: original, pruned and distilled on the comparison page."""
    out = tmp_path_factory.mktemp("runs") / "sd-pruned"
    distill = ["--distill-steps", "2", "--distill-batch-size", "2", "--distill-samples", "2"]
    code = prune_stable_diffusion.main(
        ["--model", str(sd_folder), "--out", str(out), *TINY, *distill, *TINY_EVALUATION]
    )
    return code, out


def test_stable_diffusion_recipe_writes_a_pruned_pipeline_that_reloads(sd_run):
    code, out = sd_run
    assert code == 0
    report = json.loads((out / "pruned" / "pruning_report.json").read_text())
    assert len(report["removed_units"]) == 1 and report["settings"]["criterion"] == "ld-pruner"
    assert report["totals_after"]["macs"] < report["totals_before"]["macs"]
    assert (out / "pruned" / "README.md").is_file()
    pruned = diffprune.load_pipeline(str(out / "pruned"))
    assert type(pruned).__name__ == "StableDiffusionPipeline"
    assert diffprune.count_parameters(pruned.unet) == report["totals_after"]["params"]


def test_stable_diffusion_recipe_distills_and_compares_all_three(sd_run):
    code, out = sd_run
    assert code == 0
    distillation = json.loads((out / "distilled" / "distillation_report.json").read_text())
    assert [entry["step"] for entry in distillation["history"]] == [1, 2]
    assert (
        json.loads((out / "distilled" / "pruning_report.json").read_text())["removed_units"]
        == json.loads((out / "pruned" / "pruning_report.json").read_text())["removed_units"]
    )
    diffprune.load_pipeline(str(out / "distilled"))
    comparison = json.loads((out / "comparison" / "report.json").read_text())
    assert [row["model"] for row in comparison["summary"]] == ["original", "pruned", "distilled"]
    assert (out / "comparison" / "report.html").is_file() and (out / "comparison" / "grid.png").is_file()
    assert sorted(path.name for path in out.iterdir()) == ["comparison", "distilled", "pruned"]  # no work folder


def test_a_second_run_into_the_same_folder_is_refused_and_changes_nothing(sd_run, sd_folder, capsys):
    _, out = sd_run
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    code = prune_stable_diffusion.main(["--model", str(sd_folder), "--out", str(out), *TINY, *TINY_EVALUATION])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "already holds results" in error and "\n" not in error
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before
    assert not [path for path in out.parent.iterdir() if ".staging-" in path.name]


def test_sdxl_recipe_prunes_and_compares(sdxl_folder, tmp_path):
    out = tmp_path / "sdxl-pruned"
    code = prune_sdxl.main(["--model", str(sdxl_folder), "--out", str(out), *TINY, *TINY_EVALUATION])
    assert code == 0
    report = json.loads((out / "pruned" / "pruning_report.json").read_text())
    assert len(report["removed_units"]) == 1 and report["pipeline_class"] == "StableDiffusionXLPipeline"
    assert type(diffprune.load_pipeline(str(out / "pruned"))).__name__ == "StableDiffusionXLPipeline"
    assert (out / "comparison" / "report.html").is_file()
    assert not (out / "distilled").exists()


def test_sdxl_distillation_and_the_wrong_family_stop_before_any_work(sdxl_folder, sd_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert prune_sdxl.main(["--model", str(sdxl_folder), "--out", str(out), *TINY, "--distill-steps", "2"]) == 2
    assert "SDXL" in capsys.readouterr().err
    assert prune_sdxl.main(["--model", str(sd_folder), "--out", str(out), *TINY]) == 2
    assert "prune_stable_diffusion.py" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--metrics", "fid,bogus"], "unknown metric 'bogus'"),
        (["--criterion", "bogus"], "unknown criterion 'bogus'"),
        (["--criterion-option", "statistic"], "not key=value"),
        (["--dtype", "fp16"], "use --dtype fp32 or bf16"),  # the library's `dtype`, said as the flag
    ],
)
def test_bad_arguments_are_one_line_errors_before_loading(extra, says, tmp_path, capsys):
    out = tmp_path / "out"
    code = prune_stable_diffusion.main(["--model", str(tmp_path / "no-such-model"), "--out", str(out), *TINY, *extra])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("prune_stable_diffusion.py: error: ") and says in error and "\n" not in error
    assert not out.exists()


@pytest.mark.parametrize("family", ["flux", "pixart"])
def test_transformer_recipes_depth_prune_and_distill(family, tmp_path):
    from tiny_transformers import tiny_flux_pipeline, tiny_pixart_sigma_pipeline

    script = {"flux": prune_flux, "pixart": prune_pixart}[family]
    source = tmp_path / family
    (tiny_flux_pipeline if family == "flux" else tiny_pixart_sigma_pipeline)().save_pretrained(source)
    out = tmp_path / "cut"
    distill = ["--distill-steps", "1", "--distill-batch-size", "1", "--distill-samples", "2"]
    assert script.main(["--model", str(source), "--out", str(out), *TINY, *distill, *TINY_EVALUATION]) == 0
    for stage in ("pruned", "distilled"):
        reloaded = diffprune.load_pipeline(str(out / stage))
        assert type(reloaded.transformer).__module__.startswith("diffusers.")  # the stock class
    assert (out / "comparison" / "report.html").is_file()


@pytest.mark.parametrize("script", [prune_stable_diffusion, prune_sdxl, prune_flux, prune_pixart])
def test_recipes_take_every_flag_of_the_prune_command_with_their_own_defaults(script):
    from diffprune.cli import build_parser, option_strings
    from diffprune.cli.prune import budget_from_args

    prune_parser = build_parser()._subparsers._group_actions[0].choices["prune"]
    recipe_parser = recipe.build_parser(script.DEFAULTS)
    assert option_strings(prune_parser) <= option_strings(recipe_parser)
    args = recipe_parser.parse_args(["--out", "o"])
    assert args.model == script.DEFAULTS.model and args.num_samples == script.DEFAULTS.num_samples
    assert budget_from_args(args, script.DEFAULTS.keep_macs) == diffprune.Budget(keep_macs=script.DEFAULTS.keep_macs)
