"""diffprune subclasses of the diffusers UNet classes whose config records the removed units.

`PrunedUNet2DConditionModel(**config, removed_units={name: gate_form})` builds the original architecture and applies the
removal, so a pruned model is described by data (its config) and reloads through stock `from_pretrained`.
diffusers keeps only the config keys that `__init__`'s signature names, so each subclass's `__init__`
advertises the base class's parameters plus `removed_units`.
"""

from __future__ import annotations

import inspect

from diffusers import UNet2DConditionModel, UNet2DModel
from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

from .errors import DiffpruneError


def _make_pruned_class(base: type) -> type:
    base_init = base.__init__
    signature = inspect.signature(base_init)
    parameters = [
        p for p in signature.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    parameters.append(inspect.Parameter("removed_units", inspect.Parameter.KEYWORD_ONLY, default=None))

    def __init__(self, *args, removed_units=None, **kwargs):
        base_init(self, *args, **kwargs)
        removed_units = dict(removed_units or {})  # {module path: gate form}
        self.register_to_config(removed_units=removed_units)
        from .surgery import apply_removal

        apply_removal(self, removed_units)

    __init__.__signature__ = signature.replace(parameters=parameters)
    name = f"Pruned{base.__name__}"
    # Recorded in model_index.json as ["diffprune", name]: stock diffusers imports `diffprune` to find it.
    return type(name, (base,), {"__init__": __init__, "__module__": "diffprune", "__qualname__": name})


PrunedUNet2DConditionModel = _make_pruned_class(UNet2DConditionModel)
PrunedUNet2DModel = _make_pruned_class(UNet2DModel)
PrunedAudioLDM2UNet2DConditionModel = _make_pruned_class(AudioLDM2UNet2DConditionModel)

PRUNED_CLASSES = {
    UNet2DConditionModel: PrunedUNet2DConditionModel,
    UNet2DModel: PrunedUNet2DModel,
    AudioLDM2UNet2DConditionModel: PrunedAudioLDM2UNet2DConditionModel,
}


def pruned_class_for(cls: type) -> type:
    if cls in PRUNED_CLASSES.values():
        return cls
    for base, pruned in PRUNED_CLASSES.items():
        if cls is base:
            return pruned
    supported = ", ".join(base.__name__ for base in PRUNED_CLASSES)
    raise DiffpruneError(f"cannot prune a {cls.__name__}; supported UNet classes: {supported}")
