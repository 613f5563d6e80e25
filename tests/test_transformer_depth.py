"""Depth cuts of diffusion transformers beyond the family contract (test_families.py): stacks, fixed blocks and
per-block config a cut edits, and impossible cuts as one-line errors."""

import pytest
import torch
from tiny_transformers import TINY_TRANSFORMERS, model_and_inputs

from diffprune.errors import DiffpruneError
from diffprune.structure.transformer_depth import depth_units, remove_blocks


def _every_other_block(model):
    return depth_units(model)[::2]


def test_stacks_and_fixed_blocks():
    sd3, _ = model_and_inputs(TINY_TRANSFORMERS["sd3"])
    assert "transformer_blocks.4" not in depth_units(sd3)  # the last joint block drops the text stream
    dit, _ = model_and_inputs(TINY_TRANSFORMERS["dit"])
    assert "transformer_blocks.0" not in depth_units(dit)  # its embedder conditions DiT's output layer
    flux, _ = model_and_inputs(TINY_TRANSFORMERS["flux"])
    cut = remove_blocks(flux, ["transformer_blocks.1", "single_transformer_blocks.0", "single_transformer_blocks.3"])
    assert (cut.config.num_layers, cut.config.num_single_layers) == (2, 2)
    sd3_cut = remove_blocks(sd3, ["transformer_blocks.1"])
    assert tuple(sd3_cut.config.dual_attention_layers) == (0, 1)  # was (0, 2): block 2 is now block 1


def test_impossible_cuts_are_one_line_errors():
    sd3, _ = model_and_inputs(TINY_TRANSFORMERS["sd3"])
    with pytest.raises(DiffpruneError, match="transformer_blocks.4 cannot be removed"):
        remove_blocks(sd3, ["transformer_blocks.4"])
    flux, _ = model_and_inputs(TINY_TRANSFORMERS["flux"])
    everything_single = [f"single_transformer_blocks.{i}" for i in range(4)]
    with pytest.raises(DiffpruneError, match="leaves none"):
        remove_blocks(flux, everything_single)
    with pytest.raises(DiffpruneError, match="not a supported diffusers denoiser"):
        depth_units(torch.nn.Linear(2, 2))
