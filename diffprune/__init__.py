"""diffprune: find the denoiser structures that matter least, cut them for real, and prove the trade-off.

The package follows the flow, one folder per stage (each folder's docstring says what it owns and what it
may import):
    families/ (what each denoiser class is made of and how its pipeline calls it) -> structure/ (units, gates,
    costs, budget and selection, surgery) -> criteria/ (scores) -> pruning/ (prune: plan, then cut) ->
    recovery/ (distillation, LoRA) -> evaluation/ (metrics, latency, reports) -> cli/
with models/ (loading, saving, generation, task adapters, training noise) beside them, and shared modules at the
root (errors, devices, tensors, outputs, distributed, timing).

Attributes are imported lazily so `diffprune --help` stays fast. No subpackage shares a name with an
exported function: importing a submodule binds its name on the package, which would shadow the function.
`ModelMixin` and every `Pruned<Class>` are re-exported on purpose: for a model_index.json entry ["diffprune", "PrunedUNet2DConditionModel"] whose UNet (or transformer) is passed in (what
`load_pipeline` does), diffusers checks the passed UNet against this module's base classes, looked up as
attributes.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "Unit": "structure.units",
    "find_units": "structure.units",
    "is_depth_unit": "structure.units",
    "Gates": "structure.gates",
    "gated": "structure.gates",
    "remove_units": "structure.surgery",
    "depth_units": "structure.transformer_depth",
    "remove_blocks": "structure.transformer_depth",
    "count_macs": "structure.costs",
    "count_parameters": "structure.costs",
    "measure_latency": "structure.costs",
    "family_of": "families",
    "load_pipeline": "models.loading",
    "DiffpruneError": "errors",
    "prune": "pruning.prune",
    "PruneResult": "pruning.prune",
    "Budget": "structure.selection",
    "Criterion": "criteria.base",
    "ScoringContext": "criteria.base",
    "get_criterion": "criteria",
    "distill": "recovery.distillation",
    "DistillSettings": "recovery.distillation",
    "CalibrationSettings": "models.adapters",
    "export_plain": "structure.export",
    "adapt_lora": "recovery.lora",
    "AdaptedLora": "recovery.lora",
    "evaluate": "evaluation.running",
    "compare_and_report": "evaluation.comparison",
    "generate": "models.generation",
}
_DIFFUSERS_BASES = ("ModelMixin", "SchedulerMixin", "DiffusionPipeline")

__all__ = sorted(_EXPORTS)


_SUBPACKAGES = ("families", "structure", "models", "criteria", "pruning", "recovery", "evaluation")


def __getattr__(name):
    if name in _SUBPACKAGES:  # diffprune.criteria.LDPruner works after a bare `import diffprune`
        return import_module(f".{name}", __name__)
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _DIFFUSERS_BASES:
        return getattr(import_module("diffusers"), name)
    if name.startswith("Pruned"):  # Pruned<DiffusersClass>, made on first use (structure/removal.py)
        return getattr(import_module(".structure.removal", __name__), name)
    raise AttributeError(f"module 'diffprune' has no attribute {name!r}")
