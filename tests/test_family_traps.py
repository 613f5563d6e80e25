"""Traps of family structures: places where a naive block deletion (the stock class with the count lowered and
the block deleted, nothing else edited) loads and runs but is wrong. Each test shows the naive cut differs from
the original with that block bypassed, while diffprune's cut equals the bypass. Sections per family, each
naming it, so sections from several helpers merge."""

import copy

import torch
from tiny_other_families import (
    tiny_ace_step,
    tiny_bria_fibo,
    tiny_ideogram4,
    tiny_longcat_image,
    tiny_nucleusmoe_image,
)
from tiny_transformers import BATCH

from diffprune.structure.gates import gated
from diffprune.structure.surgery import remove_units
from diffprune.structure.transformer_depth import bypassed
from diffprune.structure.units import find_units


def _tiny(builder):
    torch.manual_seed(0)
    model, make_inputs = builder()
    return model.eval(), make_inputs(torch.Generator().manual_seed(1))


def _naive_depth_cut(model, stack: str, count_key: str, index: int):
    naive = copy.deepcopy(model)
    del getattr(naive, stack)[index]
    naive.register_to_config(**{count_key: len(getattr(naive, stack))})
    return naive


# --- Nucleus-Image (NucleusMoEImageTransformer2DModel): dense and expert feed-forwards sit where the count says ---


def test_nucleusmoe_naive_depth_cut_reloads_with_its_experts_moved_while_diffprune_cuts_in_place(tmp_path):
    model, inputs = _tiny(tiny_nucleusmoe_image)  # blocks 3 and 4 of 6 are mixtures of experts
    with torch.no_grad(), bypassed(model, ["transformer_blocks.1"]):
        expected = model(**inputs).sample

    naive = _naive_depth_cut(model, "transformer_blocks", "num_layers", 1)
    with torch.no_grad():  # in memory the naive cut is the bypass ...
        torch.testing.assert_close(naive(**inputs).sample, expected, rtol=0, atol=1e-6)
    naive.save_pretrained(tmp_path / "naive")
    torch.manual_seed(0)
    reloaded = type(model).from_pretrained(tmp_path / "naive").eval()  # ... but its saved config builds another model
    assert [b.moe_enabled for b in naive.transformer_blocks] == [False, False, True, True, False]
    assert [b.moe_enabled for b in reloaded.transformer_blocks] == [False, False, False, True, False]
    with torch.no_grad():
        assert not torch.allclose(reloaded(**inputs).sample, expected, atol=1e-3)

    cut = remove_units(model, ["transformer_blocks.1"], find_units(model, inputs))
    assert type(cut).__name__ == "PrunedNucleusMoEImageTransformer2DModel"  # cut in place: positions kept
    cut.save_pretrained(tmp_path / "cut")
    with torch.no_grad():
        torch.testing.assert_close(
            type(cut).from_pretrained(tmp_path / "cut").eval()(**inputs).sample, expected, rtol=0, atol=1e-6
        )


# --- Bria FIBO (BriaFiboTransformer2DModel): block i reads text-encoder layer i of the last N the pipeline hands ---


def test_bria_fibo_naive_depth_cut_reads_shifted_text_layers_while_diffprune_cuts_in_place():
    model, inputs = _tiny(tiny_bria_fibo)  # 3 double + 3 single blocks: the pipeline hands the last 6 layers
    encoder_layers = torch.randn(
        9, *inputs["text_encoder_layers"].shape[1:], generator=torch.Generator().manual_seed(2)
    )
    removed = "single_transformer_blocks.1"  # block 4 of 6, counting through both stacks

    def pipeline_call(denoiser):
        """As BriaFiboPipeline calls it: the text encoder's last N layers, N = the denoiser's blocks."""
        blocks = len(denoiser.transformer_blocks) + len(denoiser.single_transformer_blocks)
        with torch.no_grad():
            return denoiser(**{**inputs, "text_encoder_layers": encoder_layers[-blocks:]}).sample

    with bypassed(model, [removed]):
        expected = pipeline_call(model)
    naive = _naive_depth_cut(model, "single_transformer_blocks", "num_single_layers", 1)
    del naive.caption_projection[4]  # even dropping the removed block's own projection
    assert not torch.allclose(pipeline_call(naive), expected, atol=1e-3)  # blocks 0-3 now read layers 4-7 of 9

    cut = remove_units(model, [removed], find_units(model, inputs))
    assert len(cut.single_transformer_blocks) == 3  # the block stays, as a bypass
    torch.testing.assert_close(pipeline_call(cut), expected, rtol=0, atol=1e-6)


# --- LongCat-Image (LongCatImageTransformer2DModel): per-block checkpointing flags beside the stacks ---


def test_longcat_image_depth_cut_keeps_one_checkpointing_flag_per_kept_block_and_trains_checkpointed():
    model, inputs = _tiny(tiny_longcat_image)
    names = ["transformer_blocks.1", "single_transformer_blocks.0", "single_transformer_blocks.3"]
    cut = remove_units(model, names, find_units(model, inputs))
    assert type(cut) is type(model)
    assert len(cut.use_checkpoint) == len(cut.transformer_blocks) == 2
    assert len(cut.use_single_checkpoint) == len(cut.single_transformer_blocks) == 2
    cut.train()
    cut.enable_gradient_checkpointing()
    cut(**inputs).sample.square().mean().backward()
    assert all(p.grad is not None for p in cut.single_transformer_blocks[-1].parameters())


# --- Ideogram 4 (Ideogram4Transformer2DModel): branches pass through an RMSNorm before their gated residual ---


def test_ideogram4_branch_gate_sits_after_the_scale_invariant_norm():
    """RMSNorm(g * f(x)) = RMSNorm(f(x)) for g > 0, so a gate on the attention's own output would be invisible to
    gradient criteria; the family gates after `attention_norm2`, where scaling is seen."""
    model, inputs = _tiny(tiny_ideogram4)
    units = find_units(model, inputs)
    attention = next(u for u in units if u.name == "layers.1.attention")
    assert attention.gate_path == "layers.1.attention_norm2"
    with torch.no_grad():
        original = model(**inputs).sample
        handle = model.layers[1].attention.register_forward_hook(lambda module, args, output: 0.5 * output)
        on_the_branch = model(**inputs).sample
        handle.remove()
        half = torch.ones(len(units))
        half[units.index(attention)] = 0.5
        with gated(model, units, half):
            after_the_norm = model(**inputs).sample
    torch.testing.assert_close(on_the_branch, original, rtol=1e-4, atol=1e-4)  # the naive gate does nothing
    assert not torch.allclose(after_the_norm, original, atol=1e-3)
    assert original.shape[0] == BATCH


# --- ACE-Step (AceStepTransformer1DModel): sliding-window and full attention alternate by block position ---


def test_ace_step_naive_depth_cut_gives_later_blocks_their_neighbours_attention_pattern(tmp_path):
    model, inputs = _tiny(tiny_ace_step)  # sliding, full, sliding, full
    with torch.no_grad(), bypassed(model, ["layers.1"]):
        expected = model(**inputs).sample
    naive = _naive_depth_cut(model, "layers", "num_hidden_layers", 1)
    with torch.no_grad():  # the former block 2 (sliding) now gets position 1's full attention
        assert not torch.allclose(naive(**inputs).sample, expected, atol=1e-3)

    cut = remove_units(model, ["layers.1"], find_units(model, inputs))
    assert type(cut) is type(model)
    assert cut.config.layer_types == ["sliding_attention", "sliding_attention", "full_attention"]
    cut.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path).eval()  # the stock class rebuilds each block's own pattern
    assert [b.self_attn.sliding_window for b in reloaded.layers] == [1, 1, None]
    with torch.no_grad():
        torch.testing.assert_close(cut(**inputs).sample, expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(reloaded(**inputs).sample, expected, rtol=0, atol=1e-6)
