"""Random baseline: seeded uniform scores, the floor every criterion must beat."""

from __future__ import annotations

import random
from dataclasses import dataclass

from diffprune.criteria.base import Criterion, register


@register("random")
@dataclass
class Random(Criterion):
    seed: int = 0

    def score_pending(self, context, pending, removed, round_index) -> None:
        generator = random.Random(f"{self.seed}-{round_index}")
        context.store.put_many(round_index, {unit.name: generator.random() for unit in pending})
