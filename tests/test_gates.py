import torch
from tiny_models import FAMILIES

from diffprune.families import example_inputs
from diffprune.structure.gates import gated, removal_values, variant_values
from diffprune.structure.units import find_units


def _inputs(unet, batch):
    return example_inputs(unet, batch, text_length=6, generator=torch.Generator().manual_seed(3))


def test_gates_at_one_reproduce_the_original_exactly():
    unet = FAMILIES["sdxl"]()
    inputs = _inputs(unet, 2)
    with torch.no_grad():
        reference = unet(**inputs).sample
        with gated(unet, find_units(unet)):
            assert torch.equal(unet(**inputs).sample, reference)


def test_per_sample_variants_match_separate_runs_and_tile_over_guidance_halves():
    unet = FAMILIES["sd"]()
    units = find_units(unet)
    variants = [
        set(),
        {"down_blocks.0.attentions.1"},
        {"mid_block", "up_blocks.1.attentions.0.transformer_blocks.0.ff"},
    ]
    single = _inputs(unet, 1)
    # a classifier-free-guidance batch: [uncond x3, cond x3]; variant j governs samples j and j+3
    doubled = {
        key: (torch.cat([value] * 6) if isinstance(value, torch.Tensor) else value) for key, value in single.items()
    }
    with torch.no_grad():
        with gated(unet, units, variant_values(units, variants)):
            batched = unet(**doubled).sample
        for index, removed in enumerate(variants):
            with gated(unet, units, removal_values(units, removed)):
                alone = unet(**single).sample
            torch.testing.assert_close(batched[index : index + 1], alone, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(batched[index + 3 : index + 4], alone, rtol=1e-5, atol=1e-5)


def test_learnable_gates_receive_gradients():
    unet = FAMILIES["ddpm"]()
    units = find_units(unet)
    values = torch.nn.Parameter(torch.full((len(units),), 0.9))
    with gated(unet, units, values):
        unet(**_inputs(unet, 2)).sample.square().mean().backward()
    assert values.grad is not None and torch.isfinite(values.grad).all() and values.grad.abs().sum() > 0


def test_hooks_are_removed_after_the_context():
    unet = FAMILIES["ddpm"]()
    units = find_units(unet)
    inputs = _inputs(unet, 1)
    with torch.no_grad():
        reference = unet(**inputs).sample
        with gated(unet, units, torch.zeros(len(units))):
            pass
        assert torch.equal(unet(**inputs).sample, reference)
