"""Export a cut as a plain diffusers model, where its family can say the removed set in a stock config.

The denoiser's family decides (`Family.stock_config`): a UNet's cut is expressible when it removed the whole
mid block (mid_block_type = None) or every attention block of a down or up block (the block's attention-free
type); a diffusion transformer's depth cut is its stock class already, and nothing else is expressible. The
export says which units stand in the way, and the Pruned* class remains the way to ship such a model.
"""

from __future__ import annotations

import re

from diffprune.devices import placement_of
from diffprune.errors import DiffpruneError
from diffprune.families import family_of
from diffprune.structure.removal import stock_class_of


def plain_config(model) -> dict:
    """The stock config that builds the cut's architecture, or a one-line error naming what blocks it."""
    problem_or_config = family_of(model).stock_config(model)
    if isinstance(problem_or_config, str):
        raise DiffpruneError(problem_or_config)
    return problem_or_config


def export_plain(denoiser):
    """A stock diffusers model (the cut's base class) with the pruned model's weights and outputs."""
    config = plain_config(denoiser)
    plain = stock_class_of(type(denoiser)).from_config(config)
    state = {k: v for k, v in denoiser.state_dict().items()}
    missing, unexpected = plain.load_state_dict(state, strict=True)
    # Only attention-free blocks may lose keys (their attention weights are gone in both models).
    if missing or any(not re.search(r"attentions\.", key) for key in unexpected):
        raise DiffpruneError(f"plain export could not map weights ({len(missing)} missing); please report this")
    placement = placement_of(denoiser)
    return plain.to(device=placement.device, dtype=placement.dtype).eval()
