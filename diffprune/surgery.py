"""Surgery: remove units for real, so their weights, MACs and time are gone.

A removed residual block becomes `Bypass` (returns its input in the container its callers expect); a removed
sub-layer becomes `ZeroBranch` (contributes nothing to its parent's residual). Neither has parameters.
Invariant (tested for every family): the cut model equals the gated model with those gates at 0.
The cut model is an instance of a `Pruned*` subclass of the original class whose config lists
`removed_units`, so save_pretrained / from_pretrained rebuild it from config alone, with no pickling.
"""

from __future__ import annotations

from torch import nn

from .devices import placement_of
from .errors import DiffpruneError
from .units import RESIDUAL_BRANCH, find_units, overlapping, units_by_name


class Bypass(nn.Module):
    """Stands in for a removed residual block: the output is the block's main input."""

    def __init__(self, returns_container: bool):
        super().__init__()
        # Modules with a `return_dict` argument (Transformer2DModel) return a container; plain blocks a tensor.
        self.returns_container = returns_container

    def forward(self, hidden_states, *args, **kwargs):
        if not self.returns_container:
            return hidden_states
        if not kwargs.get("return_dict", True):
            return (hidden_states,)
        from diffusers.models.modeling_outputs import Transformer2DModelOutput

        return Transformer2DModelOutput(sample=hidden_states)


class ZeroBranch(nn.Module):
    """Stands in for a removed sub-layer (attention or feed-forward) whose output its parent adds to a residual."""

    def forward(self, hidden_states, *args, **kwargs):
        # An expanded zero costs no memory and broadcasts like the real output would.
        return hidden_states.new_zeros(()).expand(hidden_states.shape)


def _set_module(root: nn.Module, name: str, replacement: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    if isinstance(parent, nn.ModuleList):
        parent[int(leaf)] = replacement
    else:
        setattr(parent, leaf, replacement)


def replacement_for(module: nn.Module, gate_form: str) -> nn.Module:
    if gate_form == RESIDUAL_BRANCH:
        return ZeroBranch()
    import inspect

    return Bypass(returns_container="return_dict" in inspect.signature(module.forward).parameters)


def apply_removal(unet: nn.Module, removed: dict[str, str]) -> None:
    """Replace units in place, given {name: gate form}; needs no forward, so it also works on the meta device
    that from_pretrained builds models on."""
    for name, gate_form in removed.items():
        _set_module(unet, name, replacement_for(unet.get_submodule(name), gate_form))


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

    Removing units from an already pruned model accumulates: the result records both sets.
    """
    from .pruned_models import pruned_class_for

    names = list(names)
    units = find_units(unet)  # probes with inputs on the model's own device and dtype
    check_selection(units, names)
    removed = dict(unet.config.get("removed_units", None) or {})
    removed.update({unit.name: unit.gate_form for unit in units_by_name(units, names)})
    config = dict(unet.config)
    config["removed_units"] = removed
    placement = placement_of(unet)
    pruned = pruned_class_for(type(unet)).from_config(config).to(device=placement.device, dtype=placement.dtype)
    # Only surviving modules are in the new model, so the original's state dict maps onto it by name.
    state = {key: value for key, value in unet.state_dict().items() if not _under_any(key, names)}
    pruned.load_state_dict(state, strict=True)
    return pruned.train(unet.training)


def _under_any(key: str, names) -> bool:
    return any(key.startswith(name + ".") for name in names)
