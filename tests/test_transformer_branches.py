"""Branches inside diffusion-transformer blocks beyond the family contract (test_families.py): a depth cut of a
branch cut renumbers the recorded branches and forgets those inside removed blocks, and selections that overlap
or name no unit are one-line errors."""

import pytest
import torch
from tiny_transformers import TINY_TRANSFORMERS, model_and_inputs

from diffprune.errors import DiffpruneError
from diffprune.structure.gates import gated, removal_values
from diffprune.structure.surgery import remove_units
from diffprune.structure.units import RESIDUAL_BRANCH, TWO_STREAM_BRANCH, find_units


def test_a_depth_cut_of_a_branch_cut_renumbers_and_forgets_its_branches():
    model, inputs = model_and_inputs(TINY_TRANSFORMERS["sd3"])
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
    model, _ = model_and_inputs(TINY_TRANSFORMERS["pixart"])
    with pytest.raises(DiffpruneError, match="lies inside transformer_blocks.1"):
        remove_units(model, ["transformer_blocks.1", "transformer_blocks.1.ff"])
    with pytest.raises(DiffpruneError, match="not a prunable unit"):
        remove_units(model, ["transformer_blocks.1.norm1"])
