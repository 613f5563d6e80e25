import pytest
import torch
from tiny_models import FAMILIES

import diffprune
from diffprune.errors import DiffpruneError
from diffprune.families import example_inputs
from diffprune.structure.costs import count_macs, count_parameters
from diffprune.structure.gates import gated, removal_values
from diffprune.structure.surgery import pruned_class_for
from diffprune.structure.units import find_units


def _outermost_every_other(units):
    outer = [u for u in units if not any(o.contains(u) for o in units)]
    return [u.name for u in outer[::2]]


def _sub_layers(units):
    return [u.name for u in units if u.gate_form == "branch"][::3]


def _inputs(unet):
    return example_inputs(unet, 2, text_length=6, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("choose", [_outermost_every_other, _sub_layers])
def test_cut_model_equals_gated_model(family, choose):
    unet = FAMILIES[family]()
    units = find_units(unet)
    names = choose(units)
    if not names:
        pytest.skip(f"{family} has no units of this kind")
    inputs = _inputs(unet)
    before = {key: value.clone() for key, value in unet.state_dict().items()}
    with torch.no_grad():
        with gated(unet, units, removal_values(units, names)):
            expected = unet(**inputs).sample
        cut = diffprune.remove_units(unet, names)
        actual = cut(**inputs).sample
    scale = expected.abs().max()
    assert (actual - expected).abs().max() <= 1e-5 * scale
    assert isinstance(cut, type(unet)) and type(cut) is pruned_class_for(type(unet))
    assert count_parameters(cut) < count_parameters(unet)
    assert count_macs(cut) < count_macs(unet)
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items()), "the original must be untouched"
    assert not any(key.startswith(tuple(n + "." for n in names)) for key in cut.state_dict())


@pytest.mark.parametrize("family", ["sd", "ddpm", "audioldm2"])
def test_save_and_reload_round_trip_exactly(family, tmp_path):
    unet = FAMILIES[family]()
    units = find_units(unet)
    cut = diffprune.remove_units(unet, _outermost_every_other(units))
    cut.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    reloaded = type(cut).from_pretrained(tmp_path)
    assert reloaded.config.removed_units == cut.config.removed_units
    inputs = _inputs(unet)
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).sample, cut(**inputs).sample)


def test_removing_from_a_pruned_model_accumulates():
    unet = FAMILIES["ddpm"]()
    first = diffprune.remove_units(unet, ["mid_block"])
    second = diffprune.remove_units(first, ["down_blocks.0.resnets.1"])
    assert set(second.config.removed_units) == {"mid_block", "down_blocks.0.resnets.1"}
    units = find_units(unet)
    inputs = _inputs(unet)
    with torch.no_grad(), gated(unet, units, removal_values(units, ["mid_block", "down_blocks.0.resnets.1"])):
        expected = unet(**inputs).sample
    with torch.no_grad():
        assert torch.allclose(second(**inputs).sample, expected, atol=1e-6)


def test_bad_selections_are_one_line_errors():
    unet = FAMILIES["sd"]()
    with pytest.raises(DiffpruneError, match="overlapping units"):
        diffprune.remove_units(unet, ["mid_block", "mid_block.resnets.0"])
    with pytest.raises(DiffpruneError, match="not a prunable unit"):
        diffprune.remove_units(unet, ["conv_in"])
    with pytest.raises(DiffpruneError, match="named twice"):
        diffprune.remove_units(unet, ["mid_block", "mid_block"])
