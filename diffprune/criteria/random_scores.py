"""Random baseline: seeded uniform scores, the floor every criterion must beat."""

from __future__ import annotations

import random

from . import register
from .base import Criterion


@register("random")
class RandomScores(Criterion):
    def __init__(self, seed: int = 0):
        self.seed = seed

    def settings(self) -> dict:
        return {"seed": self.seed}

    def score_pending(self, context, pending, removed, round_index) -> None:
        generator = random.Random(f"{self.seed}-{round_index}")
        context.store.put_many(round_index, {unit.name: generator.random() for unit in pending})
