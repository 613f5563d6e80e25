"""Branches inside diffusion-transformer blocks (attention, cross-attention, joint attention, feed-forward) as
units: found by shape in every family, a cut equals the gated model with those gates at 0 (mixed with whole
blocks, which renumber what follows), costs fall, and the saved cut (a Pruned* subclass that ships its code)
loads in an interpreter that cannot import diffprune, with the same output; stock classes refuse it."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from tiny_transformers import TINY_TRANSFORMERS

import diffprune
from diffprune.errors import DiffpruneError
from diffprune.structure.costs import count_macs, count_parameters
from diffprune.structure.gates import gated, removal_values
from diffprune.structure.surgery import remove_units
from diffprune.structure.units import RESIDUAL_BRANCH, TWO_STREAM_BRANCH, find_units

# Branch kinds each family's blocks have (SD3's fixture has dual attention in blocks 0 and 2: attn2).
EXPECTED_KINDS = {
    "pixart": {"self_attention", "cross_attention", "feed_forward"},
    "dit": {"self_attention", "feed_forward"},
    "sana": {"self_attention", "cross_attention", "feed_forward"},
    "sd3": {"joint_attention", "self_attention", "feed_forward", "context_feed_forward"},
    "flux": {"joint_attention", "self_attention", "feed_forward", "context_feed_forward"},
}


def _model_and_inputs(family):
    torch.manual_seed(0)
    model, make_inputs = TINY_TRANSFORMERS[family]()
    return model.eval(), make_inputs(torch.Generator().manual_seed(1))


def _mixed_selection(units):
    """The second removable block, and every other branch outside it: blocks before and after a removed one."""
    blocks = [u for u in units if diffprune.is_depth_unit(u)]
    branches = [u for u in units if u.gate_form in (RESIDUAL_BRANCH, TWO_STREAM_BRANCH)]
    block = blocks[1]
    return [block.name] + [u.name for u in branches[::2] if not block.contains(u)]


@pytest.mark.parametrize("family", sorted(TINY_TRANSFORMERS))
def test_a_cut_of_blocks_and_branches_equals_gating_them_off(family):
    model, inputs = _model_and_inputs(family)
    units = find_units(model, inputs)
    branch_kinds = {u.kind for u in units if not diffprune.is_depth_unit(u)}
    assert branch_kinds == EXPECTED_KINDS[family]
    names = _mixed_selection(units)
    with torch.no_grad():
        original = model(**inputs).sample
        with gated(model, units, removal_values(units, names)):
            expected = model(**inputs).sample
        cut = remove_units(model, names)
        result = cut(**inputs).sample
    assert not torch.allclose(original, expected)  # the removed units did something
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-6)
    assert type(cut).__name__ == f"Pruned{type(model).__name__}" and isinstance(cut, type(model))
    assert count_parameters(cut) < count_parameters(model) and count_macs(cut, inputs) < count_macs(model, inputs)
    # One block went, so the branches recorded after it moved up one place.
    assert len(cut.config.removed_units) == len(names) - 1
    assert all(
        cut.get_submodule(name).__class__.__name__ in ("ZeroBranch", "ZeroStreams") for name in cut.config.removed_units
    )
    torch.testing.assert_close(model(**inputs).sample, original, rtol=0, atol=0)  # the input is untouched


def test_a_depth_cut_of_a_branch_cut_renumbers_and_forgets_its_branches():
    model, inputs = _model_and_inputs("sd3")
    first = remove_units(model, ["transformer_blocks.1.ff", "transformer_blocks.3.attn"])
    second = remove_units(first, ["transformer_blocks.1", "transformer_blocks.2.ff_context"])
    assert second.config.num_layers == 4
    assert dict(second.config.removed_units) == {
        "transformer_blocks.2.attn": TWO_STREAM_BRANCH,  # was transformer_blocks.3.attn
        "transformer_blocks.1.ff_context": RESIDUAL_BRANCH,  # was transformer_blocks.2.ff_context
    }  # transformer_blocks.1.ff went with its block
    units = find_units(model, inputs)
    all_at_once = ["transformer_blocks.1", "transformer_blocks.3.attn", "transformer_blocks.2.ff_context"]
    with torch.no_grad(), gated(model, units, removal_values(units, all_at_once)):
        expected = model(**inputs).sample
    with torch.no_grad():
        torch.testing.assert_close(second(**inputs).sample, expected, rtol=0, atol=1e-6)


def test_a_block_and_a_branch_inside_it_are_one_line_errors():
    model, _ = _model_and_inputs("pixart")
    with pytest.raises(DiffpruneError, match="lies inside transformer_blocks.1"):
        remove_units(model, ["transformer_blocks.1", "transformer_blocks.1.ff"])
    with pytest.raises(DiffpruneError, match="not a prunable unit"):
        remove_units(model, ["transformer_blocks.1.norm1"])


def test_a_bf16_branch_cut_stays_in_bf16():
    model, inputs = _model_and_inputs("flux")
    model = model.to(torch.bfloat16)
    inputs = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
    names = ["transformer_blocks.0.attn", "single_transformer_blocks.2.attn"]
    units = find_units(model, inputs)
    with torch.no_grad(), gated(model, units, removal_values(units, names)):
        expected = model(**inputs).sample
    cut = remove_units(model, names)
    assert {p.dtype for p in cut.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        torch.testing.assert_close(cut(**inputs).sample, expected, rtol=0, atol=0)


# Runs in a fresh interpreter that cannot import diffprune: only each folder's own code builds the cut.
WITHOUT_DIFFPRUNE = """
import json, sys
sys.modules["diffprune"] = None
import diffusers, torch
from diffusers import AutoModel
from safetensors.torch import load_file

cases = json.loads(sys.argv[1])
for case in cases:
    try:  # a stock class refuses the folder with loading instructions instead of building the full model
        getattr(diffusers, case["stock_class"]).from_pretrained(case["folder"])
        raise SystemExit("the stock class loaded a branch cut")
    except ValueError as error:
        assert "trust_remote_code" in str(error), error
    model = AutoModel.from_pretrained(case["folder"], trust_remote_code=True).eval()
    code = type(model).__mro__[1].__module__  # the class's helpers come from the folder's diffprune.py
    assert code.startswith("diffusers_modules"), code
    tensors = load_file(case["tensors"])
    inputs = {key.removeprefix("input."): value for key, value in tensors.items() if key.startswith("input.")}
    inputs.update(case["extra"])
    with torch.no_grad():
        output = model(**inputs).sample
    torch.testing.assert_close(output, tensors["expected"], rtol=0, atol=1e-6)
print("ok", len(cases))
"""


def test_saved_branch_cuts_load_without_diffprune(tmp_path):
    cases = []
    for family in sorted(TINY_TRANSFORMERS):
        model, inputs = _model_and_inputs(family)
        cut = remove_units(model, _mixed_selection(find_units(model, inputs)))
        folder = tmp_path / family
        cut.save_pretrained(folder)
        assert json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"].startswith("diffprune.")
        reloaded = type(cut).from_pretrained(folder)  # diffprune's own class, without the folder's code
        with torch.no_grad():
            expected = cut(**inputs).sample
            torch.testing.assert_close(reloaded(**inputs).sample, expected, rtol=0, atol=0)
        tensors = {f"input.{k}": v.contiguous() for k, v in inputs.items() if torch.is_tensor(v)}
        save_file({**tensors, "expected": expected.contiguous()}, tmp_path / f"{family}.safetensors")
        cases.append(
            {
                "stock_class": type(model).__name__,
                "folder": str(folder),
                "tensors": str(tmp_path / f"{family}.safetensors"),
                "extra": {k: v for k, v in inputs.items() if not torch.is_tensor(v)},
            }
        )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_DIFFPRUNE, json.dumps(cases)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith(f"ok {len(cases)}")
