"""Prunable units of a diffusion denoiser: a UNet's, found by structural rules, or a diffusion transformer's, the
blocks of the stacks its family declares (diffprune/families) and the branches inside them.

A unit is a module whose bypass keeps every shape, so removing it leaves a working network:
  * a residual block: a member of a block's module list (`resnets`, `attentions`, `transformer_blocks`, ...)
    that contains a normalisation layer and maps its main input to an output of the same shape;
  * the mid block: a direct child of the UNet with the same properties;
  * a sub-layer: a parametrised, non-normalisation child of a transformer block whose output has the block's
    shape; its parent adds that output to a residual, so removal means "contributes zero".
In a diffusion transformer, a branch is a parametrised, non-normalisation child of a block whose main output has
the shape of its main input (attention, cross-attention, feed-forward; FLUX single blocks' attention, which feeds
a concatenation); a joint attention (SD3, FLUX) returns one output per stream and is gated on both.
Shapes come from one probing forward at the model's sample size, so architectures nobody listed work as long
as they follow these rules. Units may nest (a sub-layer inside a transformer block inside an attention block);
selections never contain a unit together with one of its ancestors or descendants (see `overlapping`).

Each unit says how it is cut (`cut`): DEPTH (a whole block of a stack whose count a stock config lowers: a cut of
only such units is the stock class) or REPLACE (replaced in place by a bypass: the Pruned* class).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from diffprune.devices import place
from diffprune.errors import DiffpruneError
from diffprune.families import BRANCH_CUTS, DEPTH, REPLACE, UNITS, example_inputs, require
from diffprune.structure.costs import count_parameters, counting_macs
from diffprune.structure.hooks import watch
from diffprune.structure.removal import (
    RESIDUAL_BLOCK,
    RESIDUAL_BRANCH,
    TWO_STREAM_BLOCK,
    TWO_STREAM_BLOCK_IMAGE_FIRST,
    TWO_STREAM_BRANCH,
)
from diffprune.structure.transformer_depth import block_gate_form, removable_blocks

NORM_TYPES = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.InstanceNorm2d)
TOP_LEVEL_BLOCK_LISTS = ("down_blocks", "up_blocks")  # their members feed skip connections: never bypassable
__all__ = [
    "RESIDUAL_BLOCK",
    "RESIDUAL_BRANCH",
    "TWO_STREAM_BLOCK",
    "TWO_STREAM_BLOCK_IMAGE_FIRST",
    "TWO_STREAM_BRANCH",
    "UNIT_KINDS",
    "DenoiserSurvey",
    "Unit",
    "find_units",
    "is_depth_unit",
    "overlapping",
    "probe_shapes",
    "survey_denoiser",
    "units_by_name",
]


@dataclass(frozen=True)
class Unit:
    name: str  # module path in the original model, e.g. "down_blocks.1.attentions.0"
    kind: str  # one of UNIT_KINDS
    params: int
    macs: int  # multiply-accumulates of this unit in one denoiser forward (batch 1, sample size)
    gate_form: str  # structure/removal.py's gate forms: how its call carries streams
    cut: str = REPLACE  # DEPTH: dropped from its stack (stock class); REPLACE: replaced in place (Pruned* class)
    gate_at: str | None = None  # where its gate sits when not on the unit itself (after a scale-invariant norm)

    def contains(self, other: Unit) -> bool:
        return other.name.startswith(self.name + ".")

    @property
    def gate_path(self) -> str:
        return self.gate_at or self.name


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORM_TYPES) or "Norm" in type(module).__name__


def _has_norm(module: nn.Module) -> bool:
    return any(_is_norm(child) for child in module.modules())


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _probe(model: nn.Module, inputs: dict, paths, count_macs: bool = False) -> tuple[dict[str, tuple], dict[str, int]]:
    """One forward recording, for every module named in `paths` that was called: (main input shape, main output
    shape, number of tensors it returned), from its first call; with `count_macs`, also the same forward's MACs
    per module (costs.counting_macs; else {})."""
    seen: dict[str, tuple[torch.Size, torch.Size, int]] = {}

    def record(path, call):
        x, y = call.inputs[0], call.outputs[0]
        if x is not None and y is not None and path not in seen:
            seen[path] = (x.shape, y.shape, call.returned_tensors)

    counter = counting_macs(model) if count_macs else nullcontext({})
    with torch.no_grad(), counter as macs, watch(model, dict.fromkeys(paths), record):
        model(**inputs)
    return seen, macs


def probe_shapes(model: nn.Module, inputs: dict | None = None) -> dict[str, tuple[torch.Size, torch.Size]]:
    """Run one forward and record (main input shape, main output shape) for every module that was called."""
    inputs = place(inputs, model) if inputs else example_inputs(model)
    probed, _ = _probe(model, inputs, [name for name, _ in model.named_modules() if name])
    return {name: (x, y) for name, (x, y, _) in probed.items()}


# Every kind of unit find_units reports: whole blocks, then sub-layers inside transformer blocks.
UNIT_KINDS = (
    "resnet",
    "attention",
    "transformer_block",
    "single_transformer_block",  # FLUX's single-stream blocks
    "refiner_block",  # Lumina 2's text and image refiners before its main stack (cut in place)
    "mid_block",
    "self_attention",
    "cross_attention",
    "joint_attention",  # SD3 / FLUX attention over the image and text streams together
    "feed_forward",
    "context_feed_forward",  # SD3 / FLUX feed-forward of the text stream
)


def is_depth_unit(unit: Unit) -> bool:
    """A whole block of a stack that a stock config counts: `prune(..., unit_filter=is_depth_unit)` keeps a
    diffusion transformer's cut loadable by its stock class (CLI: `--kinds transformer_block,
    single_transformer_block` does the same for families whose blocks are all depth units)."""
    return unit.cut == DEPTH


@dataclass(frozen=True)
class DenoiserSurvey:
    """What one probing forward of a denoiser finds: its prunable units, its parameters, and its MACs on `inputs`
    (the inputs the probe ran on, on the model's device and dtype; pass them on to count the cut's MACs alike)."""

    units: list[Unit]
    params: int
    macs: int
    inputs: dict


def survey_denoiser(model: nn.Module, inputs: dict | None = None) -> DenoiserSurvey:
    """All prunable units of a denoiser (a UNet or a diffusion transformer), in module order, with their
    parameter counts and MACs, and the denoiser's totals, from one forward that records shapes and counts MACs.

    `inputs` (default: example inputs at the sample size, batch 1) are put on the model's device and dtype."""
    family = require(model, UNITS)
    inputs = place(inputs, model) if inputs else example_inputs(model)
    modules = dict(model.named_modules())
    if family.is_transformer:
        paths = _branch_paths(model, family)
        shapes, macs = _probe(model, inputs, paths, count_macs=True)
        found = _transformer_units(model, family, shapes)
    else:
        shapes, macs = _probe(model, inputs, [name for name in modules if name], count_macs=True)
        found = _structural_units(model, family, shapes)
    units = [
        Unit(
            name,
            kind,
            sum(p.numel() for p in modules[name].parameters()),
            macs.get(name, 0) + (macs.get(gate_at, 0) if gate_at else 0),
            form,
            cut,
            gate_at,
        )
        for name, kind, form, cut, gate_at in found
    ]
    return DenoiserSurvey(units, count_parameters(model), macs.get("", 0), inputs)


def find_units(model: nn.Module, inputs: dict | None = None) -> list[Unit]:
    """All prunable units of a denoiser (a UNet or a diffusion transformer), in module order, with their
    parameter counts and MACs (survey_denoiser, which also gives the denoiser's totals).

    `inputs` (default: example inputs at the sample size, batch 1) are put on the model's device and dtype."""
    return survey_denoiser(model, inputs).units


def _structural_units(model: nn.Module, family, shapes: dict) -> list[tuple]:
    """A UNet's units by the structural rules of the module docstring, from every module's probed shapes."""
    modules = dict(model.named_modules())
    found: list[tuple] = []

    def keeps_shape(name: str) -> bool:
        return name in shapes and shapes[name][0] == shapes[name][1]

    for name, module in modules.items():
        if not name or _is_norm(module) or not _has_params(module) or not keeps_shape(name):
            continue
        parent_name, _, leaf = name.rpartition(".")
        parent = modules.get(parent_name)
        if parent_name == "" and not isinstance(module, nn.ModuleList) and _has_norm(module):
            found.append((name, family.block_kind(None, module), RESIDUAL_BLOCK, REPLACE, None))
        elif (
            isinstance(parent, nn.ModuleList)
            and parent_name not in TOP_LEVEL_BLOCK_LISTS
            and leaf.isdigit()
            and _has_norm(module)
        ):
            list_name = parent_name.rpartition(".")[2]
            found.append((name, family.block_kind(list_name, module), RESIDUAL_BLOCK, REPLACE, None))

    block_names = {name for name, kind, *_ in found if kind == "transformer_block"}
    for name, module in modules.items():
        parent_name = name.rpartition(".")[0]
        if parent_name not in block_names or _is_norm(module) or not _has_params(module):
            continue
        if name in shapes and shapes[name][1] == shapes[parent_name][0]:
            found.append((name, family.branch_kind(name.rpartition(".")[2], module, 1), RESIDUAL_BRANCH, REPLACE, None))

    order = {name: index for index, name in enumerate(modules)}
    found.sort(key=lambda item: order[item[0]])
    return found


def _block_parents(model: nn.Module, family) -> list[tuple]:
    """(block path, stack, path of the module holding its branches) of every block of the family's stacks."""
    parents = []
    for stack in family.stacks:
        for index in range(len(getattr(model, stack.attribute))):
            block = f"{stack.attribute}.{index}"
            parents.append((block, stack, f"{block}.{stack.branch_parent}" if stack.branch_parent else block))
    return parents


def _branch_paths(model: nn.Module, family) -> list[str]:
    """The children of blocks that may be branches (probed for their shapes); none where the family has no
    branch cuts."""
    if family.support_problem(BRANCH_CUTS, model) is not None:
        return []
    return [
        f"{parent}.{leaf}"
        for _, stack, parent in _block_parents(model, family)
        if stack.branches
        for leaf, _ in model.get_submodule(parent).named_children()
    ]


def _transformer_units(model: nn.Module, family, branches: dict) -> list[tuple]:
    """A diffusion transformer's units: the removable blocks of its stacks (cut by depth or in place, as the
    stack says), and in every block (removable or not) the branches whose bypass keeps shapes (in place), from
    the probed shapes of the candidate branches (`branches`)."""
    removable = removable_blocks(model)
    fixed = family.fixed_blocks(model)
    parents = _block_parents(model, family)
    with_branches = family.support_problem(BRANCH_CUTS, model) is None
    found: list[tuple] = []
    for block, stack, parent in parents:
        if block in removable:
            found.append((block, stack.kind, block_gate_form(stack), stack.cut, None))
        if not (with_branches and stack.branches):
            continue
        for leaf, child in model.get_submodule(parent).named_children():
            name = f"{parent}.{leaf}"
            if _is_norm(child) or not _has_params(child) or name not in branches or name in fixed:
                continue
            in_shape, out_shape, streams = branches[name]
            if in_shape != out_shape:
                continue
            form = TWO_STREAM_BRANCH if streams > 1 else RESIDUAL_BRANCH
            gate_at = f"{parent}.{family.branch_gates[leaf]}" if leaf in family.branch_gates else None
            found.append((name, family.branch_kind(leaf, child, streams), form, REPLACE, gate_at))
    return found


def units_by_name(units: list[Unit], names) -> list[Unit]:
    """Look names up, with a one-line error for a name that is not a unit."""
    table = {unit.name: unit for unit in units}
    unknown = [name for name in names if name not in table]
    if unknown:
        raise DiffpruneError(
            f"not a prunable unit: {', '.join(unknown)}; run `diffprune units MODEL` to list the unit names"
        )
    return [table[name] for name in names]


def overlapping(names) -> list[tuple[str, str]]:
    """Pairs (ancestor, descendant) among `names`; a valid selection has none."""
    ordered = sorted(set(names))
    return [(a, b) for a in ordered for b in ordered if b.startswith(a + ".")]
