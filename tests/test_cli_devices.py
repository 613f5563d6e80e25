"""--device and --dtype mean the same on every command, and a bad combination is one line with exit code 2,
before any model is loaded."""

import pytest
import torch

from diffprune.cli import main

COMMANDS = {
    "prune": ["prune", "digits-ddpm", "--out", "{out}"],
    "distill": ["distill", "digits-ddpm", "--teacher", "digits-ddpm", "--out", "{out}"],
    "eval": ["eval", "digits-ddpm"],
    "compare": ["compare", "digits-ddpm", "digits-ddpm", "--out", "{out}"],
    "demo": ["demo", "--out", "{out}"],
}


def _argv(command, tmp_path, *extra):
    return [part.replace("{out}", str(tmp_path / "out")) for part in COMMANDS[command]] + list(extra)


@pytest.mark.parametrize("command", COMMANDS)
def test_fp16_on_a_cpu_is_a_one_line_error(command, tmp_path, capsys):
    assert main(_argv(command, tmp_path, "--device", "cpu", "--dtype", "fp16")) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["diffprune: error: fp16 needs a GPU (--device cuda); on a CPU use --dtype fp32 or bf16"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_cuda_without_a_gpu_is_a_one_line_error(command, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    assert main(_argv(command, tmp_path, "--device", "cuda")) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "torch sees no CUDA GPU; use --device cpu" in error[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_dtype_is_refused_by_the_parser(command, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(_argv(command, tmp_path, "--dtype", "fp8"))
    assert exit_info.value.code == 2
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
