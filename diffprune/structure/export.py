"""Export a pruned UNet as a plain diffusers model, where the removed set can be said in a stock config.

Expressible removals:
  * the whole mid block                               -> mid_block_type = None
  * every attention block of a down or up block       -> the block's attention-free type
    (CrossAttnDownBlock2D / AttnDownBlock2D -> DownBlock2D, SimpleCrossAttnDownBlock2D ->
     ResnetDownsampleBlock2D, and the matching up blocks)
Everything else (single resnets, sub-layers, some of a block's attentions) has no stock config; the export
says which units stand in the way, and the diffprune class remains the way to ship such a model.
"""

from __future__ import annotations

import re

from diffusers import UNet2DConditionModel, UNet2DModel

from diffprune.devices import placement_of
from diffprune.errors import DiffpruneError

ATTENTION_FREE = {
    "CrossAttnDownBlock2D": "DownBlock2D",
    "AttnDownBlock2D": "DownBlock2D",
    "SimpleCrossAttnDownBlock2D": "ResnetDownsampleBlock2D",
    "CrossAttnUpBlock2D": "UpBlock2D",
    "AttnUpBlock2D": "UpBlock2D",
    "SimpleCrossAttnUpBlock2D": "ResnetUpsampleBlock2D",
}
PLAIN_CLASSES = {"PrunedUNet2DConditionModel": UNet2DConditionModel, "PrunedUNet2DModel": UNet2DModel}


def plain_config(unet) -> dict:
    """The stock config that builds the pruned architecture, or a one-line error naming what blocks it."""
    removed = set((unet.config.get("removed_units") or {}).keys())
    config = {k: v for k, v in dict(unet.config).items() if k != "removed_units" and not k.startswith("_")}
    handled = set()
    if "mid_block" in removed:
        config["mid_block_type"] = None
        handled.add("mid_block")
    for direction in ("down", "up"):
        key = f"{direction}_block_types"
        types = list(config[key])
        for index, block_type in enumerate(types):
            block = getattr(unet, f"{direction}_blocks")[index]
            attentions = getattr(block, "attentions", None)
            if not attentions:
                continue
            names = {f"{direction}_blocks.{index}.attentions.{j}" for j in range(len(attentions))}
            if names <= removed and block_type in ATTENTION_FREE:
                types[index] = ATTENTION_FREE[block_type]
                handled |= names
        config[key] = types
    blocking = sorted(removed - handled)
    if blocking:
        raise DiffpruneError(
            f"these removed units have no stock diffusers config: {', '.join(blocking[:4])}"
            + (" ..." if len(blocking) > 4 else "")
            + "; keep the diffprune class (it reloads with diffusers "
            "when diffprune is installed)"
        )
    return config


def export_plain(unet):
    """A stock diffusers UNet with the pruned model's weights and outputs."""
    cls = PLAIN_CLASSES.get(type(unet).__name__)
    if cls is None:
        raise DiffpruneError(f"plain export supports {', '.join(PLAIN_CLASSES)}; got {type(unet).__name__}")
    plain = cls.from_config(plain_config(unet))
    state = {k: v for k, v in unet.state_dict().items()}
    missing, unexpected = plain.load_state_dict(state, strict=True)
    # Only attention-free blocks may lose keys (their attention weights are gone in both models).
    if missing or any(not re.search(r"attentions\.", key) for key in unexpected):
        raise DiffpruneError(f"plain export could not map weights ({len(missing)} missing); please report this")
    placement = placement_of(unet)
    return plain.to(device=placement.device, dtype=placement.dtype).eval()
