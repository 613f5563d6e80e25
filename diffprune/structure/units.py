"""Prunable units of a diffusion denoiser: a UNet, found by structural rules, or a diffusion transformer,
whose units are its blocks (transformer_depth.py) and the branches inside them.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from diffprune.devices import place
from diffprune.errors import DiffpruneError
from diffprune.structure.costs import macs_by_module
from diffprune.structure.removal import PRUNED_CLASSES
from diffprune.structure.transformer_depth import (
    DEPTH_STACKS,
    TWO_STREAM_BLOCKS,
    depth_units,
    is_diffusion_transformer,
    stacks_of,
)
from diffprune.structure.transformer_inputs import transformer_example_inputs
from diffprune.structure.unet_inputs import example_inputs
from diffprune.tensors import first_tensor, output_tensor

NORM_TYPES = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.InstanceNorm2d)
TOP_LEVEL_BLOCK_LISTS = ("down_blocks", "up_blocks")  # their members feed skip connections: never bypassable

RESIDUAL_BLOCK = "residual"  # gate y = x + g (f(x) - x)
RESIDUAL_BRANCH = "branch"  # gate y = g f(x), the parent adds y to its residual
TWO_STREAM_BLOCK = "two_stream"  # a (text, image) block: each stream gated as a residual block
TWO_STREAM_BRANCH = "two_stream_branch"  # a joint attention returning (image, text) outputs: each gated y = g f(x)


@dataclass(frozen=True)
class Unit:
    name: str  # module path in the original model, e.g. "down_blocks.1.attentions.0"
    kind: str  # one of UNIT_KINDS
    params: int
    macs: int  # multiply-accumulates of this unit in one denoiser forward (batch 1, sample size)
    gate_form: str  # RESIDUAL_BLOCK, RESIDUAL_BRANCH, TWO_STREAM_BLOCK or TWO_STREAM_BRANCH

    def contains(self, other: Unit) -> bool:
        return other.name.startswith(self.name + ".")


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORM_TYPES) or "Norm" in type(module).__name__


def _has_norm(module: nn.Module) -> bool:
    return any(_is_norm(child) for child in module.modules())


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def probe_shapes(unet: nn.Module, inputs: dict | None = None) -> dict[str, tuple[torch.Size, torch.Size]]:
    """Run one forward and record (main input shape, main output shape) for every module that was called."""
    shapes: dict[str, tuple[torch.Size, torch.Size]] = {}
    handles = []
    for name, module in unet.named_modules():
        if not name:
            continue

        def hook(module, args, kwargs, output, name=name):
            x, y = first_tensor(args, kwargs), output_tensor(output)
            if x is not None and y is not None and name not in shapes:
                shapes[name] = (x.shape, y.shape)

        handles.append(module.register_forward_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            unet(**(place(inputs, unet) if inputs else example_inputs(unet)))
    finally:
        for handle in handles:
            handle.remove()
    return shapes


# Every kind of unit find_units reports: whole blocks, then sub-layers inside transformer blocks.
UNIT_KINDS = (
    "resnet",
    "attention",
    "transformer_block",
    "single_transformer_block",  # FLUX's single-stream blocks
    "mid_block",
    "self_attention",
    "cross_attention",
    "joint_attention",  # SD3 / FLUX attention over the image and text streams together
    "feed_forward",
    "context_feed_forward",  # SD3 / FLUX feed-forward of the text stream
)
# Whole blocks of a diffusion transformer: a cut of only these is a depth cut, which stock classes load.
DEPTH_KINDS = ("transformer_block", "single_transformer_block")


def is_depth_unit(unit: Unit) -> bool:
    """A whole transformer block: `prune(..., unit_filter=is_depth_unit)` (CLI: `--kinds transformer_block,
    single_transformer_block`) keeps a diffusion transformer's cut loadable by its stock class. In a UNet the
    same kind is a BasicTransformerBlock inside an attention block."""
    return unit.kind in DEPTH_KINDS


def _kind(name: str, module: nn.Module, parent_list: str | None) -> str:
    if parent_list is None:
        return "mid_block"
    if parent_list == "resnets" or "Resnet" in type(module).__name__:
        return "resnet"
    if parent_list == "transformer_blocks" or "TransformerBlock" in type(module).__name__:
        return "transformer_block"
    return "attention"


def _sub_layer_kind(module: nn.Module) -> str:
    if getattr(module, "is_cross_attention", False):
        return "cross_attention"
    if "Attention" in type(module).__name__:
        return "self_attention"
    return "feed_forward"


def find_units(unet: nn.Module, inputs: dict | None = None) -> list[Unit]:
    """All prunable units of a denoiser (a UNet or a diffusion transformer), in module order, with their
    parameter counts and MACs.

    `inputs` (default: example inputs at the sample size, batch 1) are put on the model's device and dtype."""
    if is_diffusion_transformer(unet):
        return _transformer_units(unet, inputs)
    if not isinstance(unet, tuple(PRUNED_CLASSES)):
        supported = ", ".join([cls.__name__ for cls in PRUNED_CLASSES] + list(DEPTH_STACKS))
        raise DiffpruneError(f"{type(unet).__name__} is not a supported diffusers denoiser ({supported})")
    inputs = place(inputs, unet) if inputs else example_inputs(unet)
    shapes = probe_shapes(unet, inputs)
    macs = macs_by_module(unet, inputs)
    modules = dict(unet.named_modules())
    found: list[tuple[str, str, str]] = []  # (name, kind, gate form)

    def keeps_shape(name: str) -> bool:
        return name in shapes and shapes[name][0] == shapes[name][1]

    for name, module in modules.items():
        if not name or _is_norm(module) or not _has_params(module) or not keeps_shape(name):
            continue
        parent_name, _, leaf = name.rpartition(".")
        parent = modules.get(parent_name)
        if parent_name == "" and not isinstance(module, nn.ModuleList) and _has_norm(module):
            found.append((name, "mid_block", RESIDUAL_BLOCK))
        elif (
            isinstance(parent, nn.ModuleList)
            and parent_name not in TOP_LEVEL_BLOCK_LISTS
            and leaf.isdigit()
            and _has_norm(module)
        ):
            list_name = parent_name.rpartition(".")[2]
            found.append((name, _kind(name, module, list_name), RESIDUAL_BLOCK))

    block_names = {name for name, kind, _ in found if kind == "transformer_block"}
    for name, module in modules.items():
        parent_name = name.rpartition(".")[0]
        if parent_name not in block_names or _is_norm(module) or not _has_params(module):
            continue
        if name in shapes and shapes[name][1] == shapes[parent_name][0]:
            found.append((name, _sub_layer_kind(module), RESIDUAL_BRANCH))

    order = {name: index for index, name in enumerate(modules)}
    found.sort(key=lambda item: order[item[0]])
    return [
        Unit(name, kind, sum(p.numel() for p in modules[name].parameters()), macs.get(name, 0), form)
        for name, kind, form in found
    ]


def _transformer_units(model: nn.Module, inputs: dict | None) -> list[Unit]:
    """A diffusion transformer's units: its removable blocks (transformer_depth.py), cut by depth, and in every
    block (removable or not) the branches whose bypass keeps shapes, cut by the Pruned* subclass."""
    inputs = place(inputs, model) if inputs else transformer_example_inputs(model)
    macs = macs_by_module(model, inputs)
    removable = set(depth_units(model))
    block_names = [
        f"{attribute}.{index}" for attribute, _ in stacks_of(model) for index in range(len(getattr(model, attribute)))
    ]
    branches = _probe_branches(model, inputs, block_names)
    found: list[tuple[str, str, str]] = []
    for block_name in block_names:
        block = model.get_submodule(block_name)
        if block_name in removable:
            kind = "single_transformer_block" if block_name.startswith("single_") else "transformer_block"
            found.append(
                (block_name, kind, TWO_STREAM_BLOCK if type(block).__name__ in TWO_STREAM_BLOCKS else RESIDUAL_BLOCK)
            )
        for leaf, child in block.named_children():
            name = f"{block_name}.{leaf}"
            if _is_norm(child) or not _has_params(child) or name not in branches:
                continue
            in_shape, out_shape, streams = branches[name]
            if in_shape != out_shape:
                continue
            if streams > 1:
                found.append((name, "joint_attention", TWO_STREAM_BRANCH))
            elif "context" in leaf:  # ff_context: the text stream's feed-forward
                found.append((name, "context_feed_forward", RESIDUAL_BRANCH))
            else:
                found.append((name, _sub_layer_kind(child), RESIDUAL_BRANCH))
    modules = dict(model.named_modules())
    return [
        Unit(name, kind, sum(p.numel() for p in modules[name].parameters()), macs.get(name, 0), form)
        for name, kind, form in found
    ]


def _probe_branches(model: nn.Module, inputs: dict, block_names) -> dict[str, tuple[torch.Size, torch.Size, int]]:
    """One forward recording, for every child of the named blocks: (main input shape, main output shape, number of
    tensors it returns)."""
    seen: dict[str, tuple[torch.Size, torch.Size, int]] = {}
    handles = []
    for block_name in block_names:
        for leaf, child in model.get_submodule(block_name).named_children():

            def hook(module, args, kwargs, output, name=f"{block_name}.{leaf}"):
                x, y = first_tensor(args, kwargs), output_tensor(output)
                streams = sum(isinstance(o, torch.Tensor) for o in output) if isinstance(output, tuple) else 1
                if x is not None and y is not None and name not in seen:
                    seen[name] = (x.shape, y.shape, streams)

            handles.append(child.register_forward_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen


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
