"""Surgery: remove units for real, so their weights, MACs and time are gone.

A removed residual block becomes `Bypass` (returns its input in the container its callers expect); a removed
sub-layer becomes `ZeroBranch` (contributes nothing to its parent's residual). Neither has parameters.
Invariant (tested for every family): the cut model equals the gated model with those gates at 0.
The cut model is an instance of a `Pruned*` subclass of the original class whose config lists
`removed_units`, so save_pretrained / from_pretrained rebuild it from config alone, with no pickling
(see removal.py, which holds the replacement modules and those classes).

A diffusion transformer loses whole blocks by depth (transformer_depth.py: the stock class with fewer blocks,
the rest renumbered); only if branches inside blocks go too does it become its Pruned* subclass, whose
`removed_units` name the branches by their paths in the cut model.
"""

from __future__ import annotations

import torch
from torch import nn

from diffprune.devices import placement_of
from diffprune.errors import DiffpruneError

# The removal mechanics live in removal.py, which saved cuts also carry as their own code.
from diffprune.structure.removal import (  # noqa: F401 (Bypass, ZeroBranch re-exported)
    PRUNED_CLASSES,
    PRUNED_TRANSFORMER_CLASSES,
    Bypass,
    ZeroBranch,
    apply_removal,
    replacement_for,
)
from diffprune.structure.transformer_depth import depth_units, is_diffusion_transformer, remove_blocks, renumbered
from diffprune.structure.units import find_units, overlapping, units_by_name


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


def remove_units(unet: nn.Module, names) -> nn.Module:
    """A new model without the named units, on the original's device and in its dtype; `unet` is untouched.
    A diffusion transformer that loses only whole blocks stays an instance of its stock class.

    Removing units from an already pruned model accumulates: the result records both sets.
    """
    names = list(names)
    units = find_units(unet)  # probes with inputs on the model's own device and dtype
    check_selection(units, names)
    if is_diffusion_transformer(unet):
        return _cut_transformer(unet, units, names)
    removed = dict(unet.config.get("removed_units", None) or {})
    removed.update({unit.name: unit.gate_form for unit in units_by_name(units, names)})
    config = dict(unet.config)
    config["removed_units"] = removed
    placement = placement_of(unet)
    pruned = pruned_class_for(type(unet)).from_config(config)
    # nn.Module.to, not ModelMixin.to: diffusers warns on every dtype cast ("modules that should be kept in
    # float32: []"), even for models that keep nothing in fp32, which buried the CLI's own output.
    torch.nn.Module.to(pruned, device=placement.device, dtype=placement.dtype)
    # Only surviving modules are in the new model, so the original's state dict maps onto it by name.
    state = {key: value for key, value in unet.state_dict().items() if not _under_any(key, names)}
    pruned.load_state_dict(state, strict=True)
    return pruned.train(unet.training)


def _cut_transformer(model: nn.Module, units, names) -> nn.Module:
    """Whole blocks by depth (a copy of the stock class); then, if branches go too, that copy becomes the Pruned*
    subclass in place (it adds no state, only how the config is read and saved) and loses them."""
    removable_blocks = set(depth_units(model))
    blocks = [name for name in names if name in removable_blocks]
    cut = remove_blocks(model, blocks)
    branches = {renumbered(u.name, blocks): u.gate_form for u in units_by_name(units, names) if u.name not in blocks}
    if not branches:
        return cut
    cut.__class__ = pruned_class_for(type(cut))
    removed = {**(cut.config.get("removed_units", None) or {}), **branches}
    cut.register_to_config(removed_units=removed)
    apply_removal(cut, branches)
    return cut


def _under_any(key: str, names) -> bool:
    return any(key.startswith(name + ".") for name in names)


def pruned_class_for(cls: type) -> type:
    for base, pruned in {**PRUNED_CLASSES, **PRUNED_TRANSFORMER_CLASSES}.items():
        # A cut loaded with trust_remote_code is an instance of the folder's copy of the same class.
        if cls is base or cls is pruned or (cls.__name__ == pruned.__name__ and issubclass(cls, base)):
            return pruned
    supported = ", ".join(base.__name__ for base in {**PRUNED_CLASSES, **PRUNED_TRANSFORMER_CLASSES})
    raise DiffpruneError(f"cannot prune a {cls.__name__}; supported denoiser classes: {supported}")
