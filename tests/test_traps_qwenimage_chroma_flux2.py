"""Traps: places where a naive block deletion loads and runs but is wrong, or where a family's declared layout
could be wrong without the contract noticing. Each shows what the naive cut (the stock class with the count
lowered and the block's weights deleted, nothing else edited) does, and that diffprune's cut equals the original
with the block bypassed; where possible the bypass itself is checked against an independent reference (a block
made an exact identity by zeroing the weights that write its residual updates)."""

import pytest
import torch
from naive_cuts import naive_depth_cut, zeroed
from tiny_chroma import tiny_chroma
from tiny_flux2 import tiny_flux2
from tiny_qwenimage import tiny_qwenimage
from tiny_transformers import model_and_inputs

from diffprune.structure.gates import gated, removal_values, variant_values
from diffprune.structure.hooks import watch
from diffprune.structure.surgery import remove_units
from diffprune.structure.transformer_depth import bypassed
from diffprune.structure.units import find_units

# --- Chroma --------------------------------------------------------------------------------------------------
# The approximator makes every block's modulation from a per-slot input (time_text_embed.mod_proj, computed at
# init from the counts), and each block reads its slots by position; deleting a block and lowering a count moves
# the slots of later blocks, of every double block (their offsets count the single blocks) and of the output norm.


@pytest.mark.parametrize(
    ("stack", "index", "count_key"),
    [
        ("transformer_blocks", 1, "num_layers"),
        ("transformer_blocks", 2, "num_layers"),  # the last double block: the text slots of the others move
        ("single_transformer_blocks", 0, "num_single_layers"),  # every slot moves by the same 3
        ("single_transformer_blocks", 3, "num_single_layers"),  # the last single block: doubles and norm move
    ],
)
def test_chroma_naive_depth_cut_runs_but_differs_from_the_bypass_while_diffprunes_cut_equals_it(
    stack, index, count_key
):
    model, inputs = model_and_inputs(tiny_chroma)
    block = f"{stack}.{index}"
    with torch.no_grad():
        with bypassed(model, [block]):
            expected = model(**inputs).sample
        naive = naive_depth_cut(model, stack, index, count_key)(**inputs).sample
        cut = remove_units(model, [block], find_units(model, inputs))
        result = cut(**inputs).sample
    assert naive.shape == expected.shape and torch.isfinite(naive).all()  # it loads and runs ...
    assert (naive - expected).abs().max() > 1e-3  # ... silently wrong
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-6)
    # The block is replaced in place, so both counts, and with them every slot offset, stay.
    assert type(cut).__name__ == "PrunedChromaTransformer2DModel"
    assert (cut.config.num_layers, cut.config.num_single_layers) == (3, 4)
    assert type(cut.get_submodule(block)).__name__ in ("Bypass", "TwoStreamBypass")


def test_chroma_blocks_are_cut_in_place_and_the_approximator_keeps_every_slot():
    model, inputs = model_and_inputs(tiny_chroma)
    units = find_units(model, inputs)
    blocks = [u for u in units if u.kind in ("transformer_block", "single_transformer_block")]
    assert len(blocks) == 3 + 4 and all(u.cut == "replace" for u in blocks)
    cut = remove_units(model, [u.name for u in blocks[:2]] + [blocks[-1].name], units)
    assert cut.time_text_embed.mod_proj.shape == model.time_text_embed.mod_proj.shape  # 3*4 + 12*3 + 2 slots
    torch.testing.assert_close(cut.time_text_embed.mod_proj, model.time_text_embed.mod_proj, rtol=0, atol=0)


# --- QwenImage -----------------------------------------------------------------------------------------------
# Blocks return (text, image); each has its own modulation (img_mod, txt_mod), so zeroing a block's modulation
# makes it an exact identity in the stock forward: an independent reference for the bypass and the stream order.

QWEN_MODULATION = ("img_mod.1.weight", "img_mod.1.bias", "txt_mod.1.weight", "txt_mod.1.bias")


@pytest.mark.parametrize("zero_cond_t", [False, True])
def test_qwenimage_depth_cut_equals_the_block_made_an_identity_in_the_stock_forward(zero_cond_t):
    model, inputs = model_and_inputs(tiny_qwenimage, zero_cond_t)
    identity = zeroed(model, [f"transformer_blocks.1.{name}" for name in QWEN_MODULATION])
    with torch.no_grad():
        reference = identity(**inputs).sample
        with bypassed(model, ["transformer_blocks.1"]):  # the bypass hands back (text, image) in that order
            torch.testing.assert_close(model(**inputs).sample, reference, rtol=0, atol=1e-6)
        cut = remove_units(model, ["transformer_blocks.1"], find_units(model, inputs))
        assert type(cut) is type(model) and cut.config.num_layers == 2
        torch.testing.assert_close(cut(**inputs).sample, reference, rtol=0, atol=1e-6)
        assert not torch.allclose(model(**inputs).sample, reference)


def test_qwenimage_zero_cond_t_doubles_only_the_timestep_batch_and_per_sample_gates_still_hold():
    """zero_cond_t runs the modulation on twice the batch (the second half at t = 0); block streams keep the
    image batch, so one gate value per sample still governs that sample."""
    model, inputs = model_and_inputs(tiny_qwenimage, True)
    units = find_units(model, inputs)
    kinds = {u.name: u.kind for u in units}
    assert kinds["transformer_blocks.0.txt_mlp"] == "context_feed_forward"
    assert kinds["transformer_blocks.0.img_mlp"] == "feed_forward"
    assert kinds["transformer_blocks.0.attn"] == "joint_attention"
    batches = []
    with watch(model, {"transformer_blocks.0.img_mod": None}, lambda _, call: batches.append(call.inputs[0].shape[0])):
        with torch.no_grad():
            model(**inputs)
    assert batches == [2 * inputs["hidden_states"].shape[0]]
    removed = {"transformer_blocks.1", "transformer_blocks.2.txt_mlp"}
    with torch.no_grad():
        original = model(**inputs).sample
        cut = remove_units(model, sorted(removed), units)(**inputs).sample
        with gated(model, units, variant_values(units, [set(), removed])):  # sample 0 whole, sample 1 cut
            mixed = model(**inputs).sample
    torch.testing.assert_close(mixed[0], original[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed[1], cut[1], rtol=0, atol=1e-6)


# --- FLUX.2 --------------------------------------------------------------------------------------------------
# Modulation is computed once at model level and shared by every block of a stack, so a depth cut is stock. Its
# projections have no biases, so zeroing the weights that write a block's residual updates makes it an identity.


@pytest.mark.parametrize(
    ("block", "writers"),
    [
        (
            "transformer_blocks.1",
            ("attn.to_out.0.weight", "attn.to_add_out.weight", "ff.linear_out.weight", "ff_context.linear_out.weight"),
        ),
        # a single block is called with encoder_hidden_states=None and returns one tensor (not FLUX.1's pair)
        ("single_transformer_blocks.2", ("attn.to_out.weight",)),
    ],
)
def test_flux2_depth_cut_equals_the_block_made_an_identity_in_the_stock_forward(block, writers):
    model, inputs = model_and_inputs(tiny_flux2)
    identity = zeroed(model, [f"{block}.{name}" for name in writers])
    with torch.no_grad():
        reference = identity(**inputs).sample
        with bypassed(model, [block]):  # the streams the block's call carries, in the order it returns them
            torch.testing.assert_close(model(**inputs).sample, reference, rtol=0, atol=1e-6)
        cut = remove_units(model, [block], find_units(model, inputs))
        assert type(cut) is type(model)
        torch.testing.assert_close(cut(**inputs).sample, reference, rtol=0, atol=1e-6)
        assert not torch.allclose(model(**inputs).sample, reference)


def test_flux2_single_blocks_hold_no_branch_units_because_their_parallel_attention_is_the_whole_block():
    model, inputs = model_and_inputs(tiny_flux2)
    units = find_units(model, inputs)
    assert not [u.name for u in units if u.name.startswith("single_transformer_blocks.") and u.name.count(".") > 1]
    block = "single_transformer_blocks.1"
    zeros = lambda _, call: call.rebuild([torch.zeros_like(call.outputs[0])])  # noqa: E731
    with torch.no_grad():
        with watch(model, {f"{block}.attn": None}, zeros):  # the parallel attention + MLP contributing nothing
            without_branch = model(**inputs).sample
        with gated(model, units, removal_values(units, {block})):
            without_block = model(**inputs).sample
    torch.testing.assert_close(without_branch, without_block, rtol=0, atol=1e-6)
