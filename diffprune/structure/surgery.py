"""Surgery: remove units for real, so their weights, MACs and time are gone.

A removed residual block becomes `Bypass` (or `TwoStreamBypass`: returns its inputs in the container its callers
expect); a removed sub-layer becomes `ZeroBranch` (contributes nothing to its parent's residual). None has
parameters. Invariant (tested for every family): the cut model equals the gated model with those gates at 0.
A cut made in place is an instance of the `Pruned*` subclass of the original class whose config lists
`removed_units`, so save_pretrained / from_pretrained rebuild it from config alone, with no pickling (see
removal.py, which holds the replacement modules and those classes).

A diffusion transformer loses whole blocks of its DEPTH stacks by depth (transformer_depth.py: the stock class
with fewer blocks, the rest renumbered); only if other units go too (branches inside blocks, blocks of REPLACE
stacks) does it become its Pruned* subclass, whose `removed_units` name them by their paths in the cut model.
"""

from __future__ import annotations

import torch
from torch import nn

from diffprune.devices import placement_of
from diffprune.errors import DiffpruneError
from diffprune.families import is_diffusion_transformer

# The removal mechanics live in removal.py, which saved cuts also carry as their own code.
from diffprune.structure.removal import (  # noqa: F401 (Bypass, ZeroBranch re-exported)
    Bypass,
    ZeroBranch,
    apply_removal,
    pruned_class,
    stock_class_of,
)
from diffprune.structure.transformer_depth import remove_blocks, renumbered
from diffprune.structure.units import DEPTH, Unit, find_units, overlapping, units_by_name


def check_selection(units, names) -> None:
    units_by_name(units, names)
    pairs = overlapping(names)
    if pairs:
        outer, inner = pairs[0]
        raise DiffpruneError(
            f"overlapping units: {inner} lies inside {outer}; remove only one of them (the outer one removes both)"
        )
    if len(set(names)) != len(list(names)):
        raise DiffpruneError("a unit is named twice; name each unit to remove once")


def remove_units(model: nn.Module, names, units: list[Unit] | None = None) -> nn.Module:
    """A new model without the named units, on the original's device and in its dtype; `model` is untouched.
    A diffusion transformer that loses only whole blocks of its depth stacks stays an instance of its stock class.
    `units`: the model's units when the caller has found them already (find_units), else they are found here.

    Removing units from an already pruned model accumulates: the result records both sets.
    """
    names = list(names)
    units = find_units(model) if units is None else units  # probes with inputs on the model's own device and dtype
    check_selection(units, names)
    selected = units_by_name(units, names)
    if is_diffusion_transformer(model):
        return _cut_transformer(model, selected)
    removed = dict(model.config.get("removed_units", None) or {})
    removed.update({unit.name: unit.gate_form for unit in selected})
    config = dict(model.config)
    config["removed_units"] = removed
    placement = placement_of(model)
    pruned = pruned_class_for(type(model)).from_config(config)
    # nn.Module.to, not ModelMixin.to: diffusers warns on every dtype cast ("modules that should be kept in
    # float32: []"), even for models that keep nothing in fp32, which buried the CLI's own output.
    torch.nn.Module.to(pruned, device=placement.device, dtype=placement.dtype)
    # Only surviving modules are in the new model, so the original's state dict maps onto it by name.
    state = {key: value for key, value in model.state_dict().items() if not _under_any(key, names)}
    pruned.load_state_dict(state, strict=True)
    return pruned.train(model.training)


def _cut_transformer(model: nn.Module, selected: list[Unit]) -> nn.Module:
    """Whole blocks by depth (a copy of the stock class); then, if units go in place too, that copy becomes the
    Pruned* subclass in place (it adds no state, only how the config is read and saved) and loses them."""
    blocks = [unit.name for unit in selected if unit.cut == DEPTH]
    cut = remove_blocks(model, blocks)
    in_place = {renumbered(unit.name, blocks): unit.gate_form for unit in selected if unit.cut != DEPTH}
    if not in_place:
        return cut
    cut.__class__ = pruned_class_for(type(cut))
    removed = {**(cut.config.get("removed_units", None) or {}), **in_place}
    cut.register_to_config(removed_units=removed)
    apply_removal(cut, in_place)
    return cut


def _under_any(key: str, names) -> bool:
    return any(key.startswith(name + ".") for name in names)


def pruned_class_for(cls: type) -> type:
    """The Pruned* class a cut of a `cls` becomes (`cls` may be a Pruned* class already, or a folder's copy of
    one that trust_remote_code loaded)."""
    base = stock_class_of(cls)
    if base is None:
        raise DiffpruneError(f"cannot prune a {cls.__name__}: it is not a diffusers model class")
    return pruned_class(base)
