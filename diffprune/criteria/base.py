"""The interface every criterion implements, and the context it scores in."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..adapters import TaskAdapter
from ..score_store import ScoreStore
from ..units import Unit


@dataclass
class ScoringContext:
    """Everything a criterion may use: the adapter (calibration data, losses), every unit of the UNet,
    the score store (resume), and the original's final latents, computed once."""

    adapter: TaskAdapter
    units: list[Unit]
    store: ScoreStore
    show_progress: bool = True
    variants_per_batch: int = 8
    cache: dict = field(default_factory=dict)

    @property
    def unet(self):
        return self.adapter.unet

    def reference_latents(self) -> torch.Tensor:
        """[num_samples, ...] final latents of the unmodified model."""
        if "reference_latents" not in self.cache:
            self.cache["reference_latents"] = self.adapter.final_latents(1, "original latents")[:, 0]
        return self.cache["reference_latents"]


class Criterion:
    """Maps candidate units to scores; lower means safer to remove.

    `removed` are units already removed in earlier rounds of progressive pruning: a criterion must score
    each candidate on the model with those units removed (gates at 0) as well.
    """

    name = "abstract"

    def score(self, context: ScoringContext, candidates: list[Unit], removed: list[Unit], round_index: int) -> dict[str, float]:
        pending = [unit for unit in candidates if context.store.get(round_index, unit.name) is None]
        if pending:
            self.score_pending(context, pending, removed, round_index)
        return {unit.name: context.store.get(round_index, unit.name) for unit in candidates}

    def score_pending(self, context: ScoringContext, pending: list[Unit], removed: list[Unit], round_index: int) -> None:
        """Compute scores for `pending` and put them into context.store as they become available."""
        raise NotImplementedError

    def settings(self) -> dict:
        """Options that change the scores (recorded for resume and in the report)."""
        return {}
