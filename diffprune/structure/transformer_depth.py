"""Depth units of diffusion-transformer denoisers, and cuts of them that stock diffusers loads.

A transformer denoiser (PixArt, DiT, SD3, FLUX, Sana) is a stack of blocks of one shape: each maps its inputs
to outputs of the same shapes, so any block can be bypassed. Removing whole blocks is therefore a depth cut
that the stock class can express: the remaining blocks are renumbered (a ModuleList re-indexes itself, and so
do the state dict's keys) and the config's layer count is lowered, so `save_pretrained` writes a folder that
the stock class loads, with no code of ours, into the same model.

What is kept fixed:
  * SD3's last joint block is built with `context_pre_only` (it drops the text stream); a stock config always
    makes its last block that way, so that block is not a unit; `dual_attention_layers` indices are renumbered.
  * DiT's output layer takes its conditioning from the first block's embedder (`transformer_blocks[0].norm1.emb`),
    so that block stays.
  * FLUX has two stacks (double-stream `transformer_blocks`, `num_layers`; single-stream
    `single_transformer_blocks`, `num_single_layers`); each keeps at least one block, as does every other stack.

Branches inside blocks (attention, feed-forward) are units too, but no stock config can drop one: a cut that
removes them is the Pruned* subclass (surgery.py, removal.py), whose `removed_units` this module renumbers when
blocks are removed later.

Invariant (tests/test_transformer_depth.py, every family): the cut model's output equals the original's with
those blocks bypassed (`bypassed`), and the saved cut reloads with the stock class alone to the same output.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

from torch import nn

from diffprune.errors import DiffpruneError

# class name -> ((block list attribute, config key that counts it), ...)
DEPTH_STACKS = {
    "PixArtTransformer2DModel": (("transformer_blocks", "num_layers"),),
    "DiTTransformer2DModel": (("transformer_blocks", "num_layers"),),
    "SanaTransformer2DModel": (("transformer_blocks", "num_layers"),),
    "SD3Transformer2DModel": (("transformer_blocks", "num_layers"),),
    "FluxTransformer2DModel": (
        ("transformer_blocks", "num_layers"),
        ("single_transformer_blocks", "num_single_layers"),
    ),
}
# Blocks other modules depend on (DiT's output layer reads transformer_blocks[0].norm1.emb).
FIXED_BLOCKS = {"DiTTransformer2DModel": ("transformer_blocks.0",)}
# Blocks that take and return (encoder_hidden_states, hidden_states) rather than hidden_states alone.
TWO_STREAM_BLOCKS = ("JointTransformerBlock", "FluxTransformerBlock", "FluxSingleTransformerBlock")


def is_diffusion_transformer(model) -> bool:
    return any(cls.__name__ in DEPTH_STACKS for cls in type(model).__mro__)


def stacks_of(transformer: nn.Module) -> tuple[tuple[str, str], ...]:
    for cls in type(transformer).__mro__:
        if cls.__name__ in DEPTH_STACKS:
            return DEPTH_STACKS[cls.__name__]
    supported = ", ".join(DEPTH_STACKS)
    raise DiffpruneError(f"{type(transformer).__name__} is not a supported diffusion transformer ({supported})")


def depth_units(transformer: nn.Module) -> list[str]:
    """Module paths of the blocks that can be removed, in order (e.g. "transformer_blocks.3")."""
    fixed = next((FIXED_BLOCKS[c.__name__] for c in type(transformer).__mro__ if c.__name__ in FIXED_BLOCKS), ())
    names = []
    for attribute, _ in stacks_of(transformer):
        for index, block in enumerate(getattr(transformer, attribute)):
            name = f"{attribute}.{index}"
            if name in fixed or getattr(block, "context_pre_only", False):  # SD3's last joint block
                continue
            names.append(name)
    return names


def _split(name: str) -> tuple[str, int]:
    attribute, _, index = name.rpartition(".")
    return attribute, int(index)


def check_removable(transformer: nn.Module, names) -> None:
    removable = set(depth_units(transformer))
    unknown = [name for name in names if name not in removable]
    if unknown:
        raise DiffpruneError(
            f"{', '.join(unknown)} cannot be removed from this {type(transformer).__name__}; removable blocks: "
            f"{', '.join(sorted(removable, key=_split)) or 'none'}"
        )
    if len(set(names)) != len(list(names)):
        raise DiffpruneError("a block is named twice; name each block to remove once")
    for attribute, _ in stacks_of(transformer):
        left = len(getattr(transformer, attribute)) - sum(_split(name)[0] == attribute for name in names)
        if left < 1:
            raise DiffpruneError(f"removing every block of {attribute} leaves none; keep at least one")


def remove_blocks(transformer: nn.Module, names) -> nn.Module:
    """A new model of the same stock class without the named blocks, its config's layer counts lowered;
    `transformer` is untouched."""
    names = list(names)
    check_removable(transformer, names)
    cut = copy.deepcopy(transformer)
    counts = {}
    for attribute, config_key in stacks_of(cut):
        removed = {_split(name)[1] for name in names if _split(name)[0] == attribute}
        blocks = getattr(cut, attribute)
        kept = [block for index, block in enumerate(blocks) if index not in removed]
        setattr(cut, attribute, nn.ModuleList(kept))
        counts[config_key] = len(kept)
        if attribute == "transformer_blocks" and cut.config.get("dual_attention_layers"):
            dual = [i - sum(r < i for r in removed) for i in cut.config.dual_attention_layers if i not in removed]
            counts["dual_attention_layers"] = tuple(dual)
    removed_branches = cut.config.get("removed_units", None)
    if removed_branches:  # a Pruned* cut's branches, by path: renumbered, and gone with their blocks
        kept_branches = {
            renumbered(n, names): form for n, form in removed_branches.items() if _block_of(n) not in names
        }
        counts["removed_units"] = kept_branches
    cut.register_to_config(**counts)
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


def _bypass_hook(two_streams: bool):
    def hook(module, args, kwargs, output):
        hidden_states = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        if not two_streams:
            return hidden_states
        encoder = kwargs["encoder_hidden_states"] if "encoder_hidden_states" in kwargs else args[1]
        return encoder, hidden_states

    return hook


@contextmanager
def bypassed(transformer: nn.Module, names):
    """Run `transformer` as if the named blocks were not there: each returns its inputs unchanged."""
    check_removable(transformer, list(names))
    handles = []
    try:
        for name in names:
            block = transformer.get_submodule(name)
            two_streams = type(block).__name__ in TWO_STREAM_BLOCKS
            handles.append(block.register_forward_hook(_bypass_hook(two_streams), with_kwargs=True))
        yield transformer
    finally:
        for handle in handles:
            handle.remove()
