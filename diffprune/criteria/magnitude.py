"""Magnitude baseline: the mean absolute weight of a unit (as in BK-SDM's block-level study). Data-free."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffprune.criteria.base import Criterion, register


@register("magnitude")
@dataclass
class Magnitude(Criterion):
    def score_pending(self, context, pending, removed, round_index) -> None:
        scores = {}
        for unit in pending:
            weights = [p.detach().abs().flatten() for p in context.denoiser.get_submodule(unit.name).parameters()]
            scores[unit.name] = float(torch.cat(weights).float().mean())
        context.store.put_many(round_index, scores)
