"""`diffprune prune` as a user runs it: outputs, resume-friendly folder rules, one-line errors."""

import json

import pytest
from diffusers import DiffusionPipeline

from diffprune.cli import main
from diffprune.structure.selection import DEFAULT_BUDGET

FAST = ["--num-samples", "3", "--inference-steps", "2", "--device", "cpu"]


def test_prune_writes_a_reloadable_pipeline_and_report(ddpm_folder, tmp_path, capsys):
    out = tmp_path / "cut"
    assert main(["prune", str(ddpm_folder), "--keep-macs", "0.7", "--out", str(out), *FAST]) == 0
    assert "UNet2DModel MACs" in capsys.readouterr().out
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["kept_fraction"]["macs"] <= 0.7
    assert not (out / ".diffprune-work").exists()
    DiffusionPipeline.from_pretrained(out, trust_remote_code=True)  # the cut ships its code
    # a second run into the same folder is refused, and the first result is kept intact
    assert main(["prune", str(ddpm_folder), "--out", str(out), *FAST]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert (out / "pruning_report.json").exists()


def test_text_to_image_prune_with_prompt_file(sd_folder, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a 1\na 2\n")
    out = tmp_path / "cut"
    argv = [
        "prune",
        str(sd_folder),
        "--num-units",
        "2",
        "--kinds",
        "attention,resnet",
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        *FAST,
    ]
    assert main(argv) == 0
    reloaded = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)
    assert len(reloaded.unet.config.removed_units) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--keep-macs", "0.01"], "removing every prunable unit leaves"),
        (["--keep-macs", "1.5"], "--keep-macs must be between 0 and 1"),
        (["--keep-macs", "0.5", "--num-units", "2"], "give one budget: --keep-macs, --keep-params or --num-units"),
        (["--prompts", "/no/such/file.txt"], None),
        (["--num-samples", "1"], "at least 2 samples"),
        (["--inference-steps", "0"], "--inference-steps must be at least 1"),
        (["--criterion-option", "statistic=median"], "unknown LD-Pruner statistic 'median'"),
        (["--criterion-option", "stats=paired"], "has no option stats; its options: statistic"),
        (["--criterion", "gradflow", "--criterion-option", "steps=many"], "criterion option steps expects int"),
        (["--kinds", "resnets"], "unknown unit kind resnets in --kinds"),
        (["--device", "cuda:0"], None),
    ],
)
def test_bad_inputs_are_one_line_errors(ddpm_folder, tmp_path, capsys, extra, message):
    out = tmp_path / "cut"
    argv = ["prune", str(ddpm_folder), "--out", str(out), *FAST, *extra]
    import torch

    if "cuda:0" in extra and torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("diffprune: error:")
    if message:
        assert message in error
    assert not out.exists() or not any(p.name != ".diffprune-work" for p in out.iterdir())


def test_criterion_options_reach_the_criterion(ddpm_folder, tmp_path):
    out = tmp_path / "cut"
    argv = ["prune", str(ddpm_folder), "--criterion", "random", "--criterion-option", "seed=3", "--num-units", "1"]
    assert main([*argv, "--kinds", "resnet", "--out", str(out), *FAST]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["settings"]["criterion"] == "random" and report["settings"]["criterion_settings"] == {"seed": 3}
    kinds = {unit["name"]: unit["kind"] for unit in report["units"]}
    assert [kinds[name] for name in report["removed_units"]] == ["resnet"]


def test_unwritable_output_folder(ddpm_folder, tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        locked = "/proc/diffprune-out"  # root can write anywhere else
    else:
        locked_parent = tmp_path / "locked"
        locked_parent.mkdir(mode=0o500)
        locked = str(locked_parent / "out")
    assert main(["prune", str(ddpm_folder), "--out", locked, *FAST]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_help_names_every_bundled_model_and_the_default_budget(capsys):
    from diffprune.models import zoo

    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert all(name in text for name in zoo.PIPELINES)
    assert f"default --keep-macs {DEFAULT_BUDGET.keep_macs}" in text


def test_without_budget_flags_the_budget_is_the_library_default():
    from diffprune.cli import build_parser
    from diffprune.cli.prune import budget_from_args

    assert budget_from_args(build_parser().parse_args(["prune", "m", "--out", "o"])) == DEFAULT_BUDGET


def test_a_bad_criterion_is_refused_before_the_model_loads(tmp_path, capsys):
    out = tmp_path / "cut"
    assert main(["prune", str(tmp_path / "no-such-model"), "--criterion", "bogus", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("diffprune: error: unknown criterion 'bogus'") and "\n" not in error
    assert not out.exists()
