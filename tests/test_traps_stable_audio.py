"""Traps: places where a naive block deletion loads and runs but is wrong, or where a family's declared layout
could be wrong without the contract noticing. Each shows what the naive cut (the stock class with the count
lowered and the block's weights deleted, nothing else edited) does, and that diffprune's cut equals the original
with the block bypassed; where possible the bypass itself is checked against an independent reference (a block
made an exact identity by zeroing the weights that write its residual updates)."""

import pytest
import torch
from naive_cuts import naive_depth_cut, zeroed
from tiny_stable_audio import tiny_stable_audio
from tiny_transformers import model_and_inputs

from diffprune.structure.gates import gated, removal_values
from diffprune.structure.surgery import remove_units
from diffprune.structure.transformer_depth import bypassed
from diffprune.structure.units import find_units

# --- Stable Audio --------------------------------------------------------------------------------------------
# No trap in the depth cut: every block gets the same rotary embedding, text states and attention masks, and the
# global token (seconds + timestep) rides in the one stream [global; frames], so the naive cut is right. What
# could be wrong is the gate/bypass story over that stream: a block bypass must pass the global token through
# too, and each branch (self-attention, cross-attention, SwiGLU feed-forward) is added to the residual with no
# norm after it, so its gate scales its output. Both are checked against the block or branch silenced in place:
# the residual writers (attn1/attn2 to_out, the feed-forward's last linear) zeroed.

STABLE_AUDIO_WRITERS = {
    "attn1": ("attn1.to_out.0.weight",),
    "attn2": ("attn2.to_out.0.weight",),
    "ff": ("ff.net.2.weight", "ff.net.2.bias"),
}


def _stable_audio_silenced(model, block: str, branches=tuple(STABLE_AUDIO_WRITERS)):
    return zeroed(model, [f"{block}.{name}" for branch in branches for name in STABLE_AUDIO_WRITERS[branch]])


def test_stable_audio_depth_cut_naive_cut_and_bypass_all_equal_the_block_silenced_in_place():
    model, inputs = model_and_inputs(tiny_stable_audio)
    with torch.no_grad():
        reference = _stable_audio_silenced(model, "transformer_blocks.1")(**inputs).sample
        assert not torch.allclose(model(**inputs).sample, reference, atol=1e-4)  # block 1 did something
        with bypassed(model, ["transformer_blocks.1"]):
            bypass = model(**inputs).sample
        cut = remove_units(model, ["transformer_blocks.1"])
        naive = naive_depth_cut(model, "transformer_blocks", 1, "num_layers")
        for result in (bypass, cut(**inputs).sample, naive(**inputs).sample):
            torch.testing.assert_close(result, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("leaf", "kind"), [("attn1", "self_attention"), ("attn2", "cross_attention"), ("ff", "feed_forward")]
)
def test_stable_audio_a_branch_gated_off_equals_the_branch_silenced_in_place(leaf, kind):
    model, inputs = model_and_inputs(tiny_stable_audio)
    units = find_units(model, inputs)
    name = f"transformer_blocks.2.{leaf}"
    assert {unit.name: unit.kind for unit in units}[name] == kind
    with torch.no_grad():
        reference = _stable_audio_silenced(model, "transformer_blocks.2", (leaf,))(**inputs).sample
        assert not torch.allclose(model(**inputs).sample, reference, atol=1e-4)
        with gated(model, units, removal_values(units, [name])):
            torch.testing.assert_close(model(**inputs).sample, reference, rtol=0, atol=1e-6)
        torch.testing.assert_close(remove_units(model, [name], units)(**inputs).sample, reference, rtol=0, atol=1e-6)
