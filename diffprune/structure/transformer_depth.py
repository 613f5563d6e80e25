"""Whole blocks of diffusion transformers: which can be removed, and depth cuts that stock diffusers loads.

A transformer denoiser is one or more stacks of blocks of one shape (its family declares them, with the config
key counting each): each block maps its inputs to outputs of the same shapes, so any block can be bypassed.
Removing whole blocks of a DEPTH stack is a cut the stock class can express: the remaining blocks are renumbered
(a ModuleList re-indexes itself, and so do the state dict's keys), the config's count is lowered, and the family
edits whatever else is laid out per block (SD3.5's `dual_attention_layers`, HiDream's per-block text projections
and Llama layers), so `save_pretrained` writes a folder that the stock class loads, with no code of ours, into
the same model. Blocks of a REPLACE stack (addressed by position elsewhere, such as Chroma's modulation slots)
are replaced in place by a bypass instead (surgery.py): the Pruned* class. Each stack keeps at least one block;
blocks other modules depend on (the family's `fixed_blocks`) are never removable.

Branches inside blocks (attention, feed-forward) are units too, but no stock config can drop one: a cut that
removes them is the Pruned* subclass (surgery.py, removal.py), whose `removed_units` this module renumbers when
blocks are removed later.

Invariant (tests/test_families.py, every family): the cut model's output equals the original's with those
blocks bypassed (`bypassed`), and the saved cut reloads with the stock class alone to the same output.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

from torch import nn

from diffprune.errors import DiffpruneError
from diffprune.families import DEPTH, IMAGE_TEXT, TEXT_IMAGE, Stack, family_of
from diffprune.structure.hooks import watch
from diffprune.structure.removal import RESIDUAL_BLOCK, TWO_STREAM_BLOCK, TWO_STREAM_BLOCK_IMAGE_FIRST

_GATE_FORMS = {TEXT_IMAGE: TWO_STREAM_BLOCK, IMAGE_TEXT: TWO_STREAM_BLOCK_IMAGE_FIRST}


def block_gate_form(stack: Stack) -> str:
    """How a block of `stack` is gated and bypassed: by the streams its call carries."""
    return _GATE_FORMS.get(stack.streams, RESIDUAL_BLOCK)


def stacks_of(model: nn.Module) -> tuple[Stack, ...]:
    family = family_of(model)
    if not family.is_transformer:
        raise DiffpruneError(f"{type(model).__name__} is not a diffusion transformer; it has no stacks of blocks")
    return family.stacks


def removable_blocks(model: nn.Module) -> dict[str, Stack]:
    """{block path: its stack} of every block that can be removed, in order (e.g. "transformer_blocks.3")."""
    family = family_of(model)
    fixed = family.fixed_blocks(model)
    blocks = {}
    for stack in family.stacks:
        if stack.cut is None:
            continue
        for index in range(len(getattr(model, stack.attribute))):
            name = f"{stack.attribute}.{index}"
            if name not in fixed:
                blocks[name] = stack
    return blocks


def depth_units(model: nn.Module) -> list[str]:
    """Module paths of the blocks a stock config can drop (DEPTH stacks), in order."""
    return [name for name, stack in removable_blocks(model).items() if stack.cut == DEPTH]


def _split(name: str) -> tuple[str, int]:
    attribute, _, index = name.rpartition(".")
    return attribute, int(index)


def check_removable(model: nn.Module, names, blocks: dict[str, Stack] | None = None) -> None:
    blocks = removable_blocks(model) if blocks is None else blocks
    unknown = [name for name in names if name not in blocks]
    if unknown:
        raise DiffpruneError(
            f"{', '.join(unknown)} cannot be removed from this {type(model).__name__}; removable blocks: "
            f"{', '.join(sorted(blocks, key=_split)) or 'none'}"
        )
    if len(set(names)) != len(list(names)):
        raise DiffpruneError("a block is named twice; name each block to remove once")
    for stack in stacks_of(model):
        left = len(getattr(model, stack.attribute)) - sum(_split(name)[0] == stack.attribute for name in names)
        if left < 1:
            raise DiffpruneError(f"removing every block of {stack.attribute} leaves none; keep at least one")


def remove_blocks(model: nn.Module, names) -> nn.Module:
    """A new model of the same stock class without the named blocks of DEPTH stacks, its config's counts (and the
    family's per-block config and weights) edited; `model` is untouched."""
    names = list(names)
    check_removable(model, names, {n: s for n, s in removable_blocks(model).items() if s.cut == DEPTH})
    cut = copy.deepcopy(model)
    counts, removed = {}, {}
    for stack in stacks_of(cut):
        indices = sorted(_split(name)[1] for name in names if _split(name)[0] == stack.attribute)
        if not indices:
            continue
        blocks = getattr(cut, stack.attribute)
        setattr(cut, stack.attribute, nn.ModuleList(b for i, b in enumerate(blocks) if i not in indices))
        counts[stack.count_key] = len(blocks) - len(indices)
        removed[stack.attribute] = indices
    removed_branches = cut.config.get("removed_units", None)
    if removed_branches:  # a Pruned* cut's units, by path: renumbered, and gone with their blocks
        counts["removed_units"] = {
            renumbered(n, names): form for n, form in removed_branches.items() if _block_of(n) not in names
        }
    cut.register_to_config(**counts)
    family_of(cut).edit_depth_cut(cut, removed)
    return cut


def _block_of(path: str) -> str:
    """ "transformer_blocks.3.attn" -> "transformer_blocks.3" """
    attribute, index, *_ = path.split(".")
    return f"{attribute}.{index}"


def renumbered(path: str, removed_blocks) -> str:
    """The path of a module inside a block once the named blocks are removed (later blocks move up)."""
    attribute, index, *rest = path.split(".")
    earlier = sum(1 for block in removed_blocks if _split(block)[0] == attribute and _split(block)[1] < int(index))
    return ".".join([attribute, str(int(index) - earlier), *rest])


@contextmanager
def bypassed(model: nn.Module, names):
    """Run `model` as if the named blocks were not there: each returns its inputs unchanged."""
    blocks = removable_blocks(model)
    check_removable(model, list(names), blocks)
    with watch(
        model, {name: block_gate_form(blocks[name]) for name in names}, lambda _, call: call.rebuild(call.inputs)
    ):
        yield model
