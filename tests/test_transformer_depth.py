"""Depth cuts of diffusion transformers (PixArt, DiT, SD3, FLUX, Sana): a cut equals the original with those
blocks bypassed, costs fall, and the saved cut loads with the stock diffusers class in an interpreter that never
imports diffprune, giving the same output."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from tiny_transformers import TINY_TRANSFORMERS

from diffprune.errors import DiffpruneError
from diffprune.structure.costs import count_macs, count_parameters
from diffprune.structure.transformer_depth import bypassed, depth_units, remove_blocks


def _model_and_inputs(family):
    torch.manual_seed(0)
    model, make_inputs = TINY_TRANSFORMERS[family]()
    return model.eval(), make_inputs(torch.Generator().manual_seed(1))


def _every_other_block(model):
    return depth_units(model)[::2]


@pytest.mark.parametrize("family", sorted(TINY_TRANSFORMERS))
def test_cutting_every_other_block_equals_bypassing_them(family):
    model, inputs = _model_and_inputs(family)
    names = _every_other_block(model)
    with torch.no_grad():
        original = model(**inputs).sample
        with bypassed(model, names):
            expected = model(**inputs).sample
        cut = remove_blocks(model, names)
        result = cut(**inputs).sample
    assert not torch.allclose(original, expected)  # the bypassed blocks did something
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-6)
    assert type(cut) is type(model) and count_parameters(cut) < count_parameters(model)
    assert count_macs(cut, inputs) < count_macs(model, inputs)
    torch.testing.assert_close(model(**inputs).sample, original, rtol=0, atol=0)  # the input is untouched


def test_stacks_and_fixed_blocks():
    sd3, _ = _model_and_inputs("sd3")
    assert "transformer_blocks.4" not in depth_units(sd3)  # the last joint block drops the text stream
    dit, _ = _model_and_inputs("dit")
    assert "transformer_blocks.0" not in depth_units(dit)  # its embedder conditions DiT's output layer
    flux, _ = _model_and_inputs("flux")
    cut = remove_blocks(flux, ["transformer_blocks.1", "single_transformer_blocks.0", "single_transformer_blocks.3"])
    assert (cut.config.num_layers, cut.config.num_single_layers) == (2, 2)
    sd3_cut = remove_blocks(sd3, ["transformer_blocks.1"])
    assert tuple(sd3_cut.config.dual_attention_layers) == (0, 1)  # was (0, 2): block 2 is now block 1


def test_impossible_cuts_are_one_line_errors():
    sd3, _ = _model_and_inputs("sd3")
    with pytest.raises(DiffpruneError, match="transformer_blocks.4 cannot be removed"):
        remove_blocks(sd3, ["transformer_blocks.4"])
    flux, _ = _model_and_inputs("flux")
    everything_single = [f"single_transformer_blocks.{i}" for i in range(4)]
    with pytest.raises(DiffpruneError, match="leaves none"):
        remove_blocks(flux, everything_single)
    with pytest.raises(DiffpruneError, match="not a supported diffusion transformer"):
        depth_units(torch.nn.Linear(2, 2))


STOCK_LOADER = """
import json, sys
import diffusers, torch
from safetensors.torch import load_file

cases = json.loads(sys.argv[1])
for case in cases:
    model = getattr(diffusers, case["class"]).from_pretrained(case["folder"]).eval()
    tensors = load_file(case["tensors"])
    inputs = {key.removeprefix("input."): value for key, value in tensors.items() if key.startswith("input.")}
    inputs.update(case["extra"])
    with torch.no_grad():
        output = model(**inputs).sample
    torch.testing.assert_close(output, tensors["expected"], rtol=0, atol=1e-6)
assert "diffprune" not in sys.modules, "diffprune was imported"
print("ok", len(cases))
"""


def test_saved_cuts_load_with_the_stock_class_without_diffprune(tmp_path):
    cases = []
    for family in sorted(TINY_TRANSFORMERS):
        model, inputs = _model_and_inputs(family)
        cut = remove_blocks(model, _every_other_block(model))
        folder = tmp_path / family
        cut.save_pretrained(folder)
        with torch.no_grad():
            expected = cut(**inputs).sample
        tensors = {f"input.{k}": v.contiguous() for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        save_file({**tensors, "expected": expected.contiguous()}, tmp_path / f"{family}.safetensors")
        extra = {k: v for k, v in inputs.items() if not isinstance(v, torch.Tensor)}
        cases.append(
            {
                "class": type(cut).__name__,
                "folder": str(folder),
                "tensors": str(tmp_path / f"{family}.safetensors"),
                "extra": extra,
            }
        )
    result = subprocess.run(
        [sys.executable, "-c", STOCK_LOADER, json.dumps(cases)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith(f"ok {len(cases)}")


def test_a_bf16_transformer_is_cut_in_bf16():
    model, inputs = _model_and_inputs("flux")
    model = model.to(torch.bfloat16)
    inputs = {
        k: v.to(torch.bfloat16) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in inputs.items()
    }
    names = _every_other_block(model)
    with torch.no_grad(), bypassed(model, names):
        expected = model(**inputs).sample
    cut = remove_blocks(model, names)
    assert {p.dtype for p in cut.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        torch.testing.assert_close(cut(**inputs).sample, expected, rtol=0, atol=0)
