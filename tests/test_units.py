import pytest
import torch
from tiny_models import FAMILIES

from diffprune.errors import DiffpruneError
from diffprune.structure.costs import count_macs
from diffprune.structure.units import find_units, overlapping, probe_shapes, units_by_name


@pytest.mark.parametrize("family", FAMILIES)
def test_every_unit_keeps_its_shape_and_costs_something(family):
    unet = FAMILIES[family]()
    units = find_units(unet)
    shapes = probe_shapes(unet)
    assert units, f"no units found in {family}"
    assert {unit.kind for unit in units} >= {"resnet", "attention", "mid_block"}
    for unit in units:
        unet.get_submodule(unit.name)  # names are module paths of the original
        if unit.gate_form == "residual":
            assert shapes[unit.name][0] == shapes[unit.name][1]
        assert unit.params > 0 and unit.macs > 0


@pytest.mark.parametrize("family", ["sd", "sdxl", "audioldm2"])
def test_transformer_sub_layers_are_units(family):
    kinds = {unit.kind for unit in find_units(FAMILIES[family]())}
    assert {"transformer_block", "self_attention", "feed_forward"} <= kinds


def test_resampling_and_skip_connected_blocks_are_not_units():
    names = [unit.name for unit in find_units(FAMILIES["sd"]())]
    assert not any("downsamplers" in name or "upsamplers" in name for name in names)
    # up-block resnets take concatenated skips (channels change), so they cannot be bypassed
    assert not any(name.startswith("up_blocks") and ".resnets." in name for name in names)
    assert "down_blocks.0.resnets.0" in names


def test_outermost_units_cost_less_than_the_whole():
    unet = FAMILIES["sd"]()
    units = find_units(unet)
    outer = [u for u in units if not any(o.contains(u) for o in units)]
    assert sum(u.macs for u in outer) < count_macs(unet)


def test_unknown_names_and_overlaps_are_reported():
    units = find_units(FAMILIES["ddpm"]())
    with pytest.raises(DiffpruneError, match="not a prunable unit"):
        units_by_name(units, ["down_blocks.9.resnets.0"])
    assert overlapping(["mid_block", "mid_block.resnets.0", "down_blocks.0.resnets.1"]) == [
        ("mid_block", "mid_block.resnets.0")
    ]


def test_a_model_that_is_no_denoiser_is_rejected_with_the_supported_classes():
    with pytest.raises(
        DiffpruneError, match="not a supported diffusers denoiser .*UNet2DModel.*FluxTransformer2DModel"
    ):
        find_units(torch.nn.Linear(2, 2))
