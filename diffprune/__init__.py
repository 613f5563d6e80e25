"""diffprune: find the UNet structures that matter least, cut them for real, and prove the trade-off.

Attributes are imported lazily so `diffprune --help` stays fast. No submodule shares a name with an
exported function (pruning.py holds prune, distillation.py holds distill): importing a submodule binds its
name on the package, which would shadow the function. `ModelMixin` is re-exported on purpose: for a
model_index.json entry ["diffprune", "PrunedUNet2DConditionModel"] whose UNet is passed in (what
`load_pipeline` does), diffusers checks the passed UNet against this module's base classes, looked up as
attributes.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "Unit": "units",
    "find_units": "units",
    "Gates": "gates",
    "gated": "gates",
    "remove_units": "surgery",
    "count_macs": "costs",
    "count_parameters": "costs",
    "measure_latency": "costs",
    "PrunedUNet2DConditionModel": "pruned_models",
    "PrunedUNet2DModel": "pruned_models",
    "PrunedAudioLDM2UNet2DConditionModel": "pruned_models",
    "load_pipeline": "loading",
    "DiffpruneError": "errors",
    "prune": "pruning",
    "PruneResult": "pruning",
    "distill": "distillation",
    "DistillSettings": "distillation",
    "CalibrationSettings": "adapters",
    "export_plain": "export",
    "adapt_lora": "lora",
    "AdaptedLora": "lora",
    "evaluate": "evaluation",
    "compare_and_report": "evaluation",
    "generate": "generation",
}
_DIFFUSERS_BASES = ("ModelMixin", "SchedulerMixin", "DiffusionPipeline")

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _DIFFUSERS_BASES:
        return getattr(import_module("diffusers"), name)
    raise AttributeError(f"module 'diffprune' has no attribute {name!r}")
