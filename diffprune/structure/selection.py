"""Choosing units to remove under a budget.

Greedy, never two overlapping units, until the budget is met; a unit that contains chosen units absorbs them. Where
units removed earlier (in an earlier round, or by gradflow's earlier stages) sit inside the large units the rest of the
budget needs, the units containing them compete too. Ranking (RANKINGS):
  * "score" (default): lowest score first, as LD-Pruner removes the units that matter least;
  * "score-per-cost": lowest score per MAC (or parameter) saved first, a knapsack-style efficiency.
Measured on digits-t2i at keep_macs 0.7 (docs/results.md), "score-per-cost" picks the mid block (the
highest single score, but also the largest unit) and wrecks the model, while "score" keeps it usable:
single-unit scores are not additive, so big high-impact units are a poor bargain whatever they save.
Budgets: `keep_macs` (fraction of the denoiser's MACs kept, the default), `keep_params` or `num_units`.
An unreachable budget is a one-line error that says the most that can be removed.

It lives in the structure layer, below both criteria/ and pruning/, because both use it: prune() selects with
it, and criteria that aim at the budget (gradflow's marking, LD-Pruner's adaptive allocation) must draw the
same line prune will. It is arithmetic on units and their costs, and imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffprune.errors import DiffpruneError

if TYPE_CHECKING:  # annotations only: the CLI reads DEFAULT_BUDGET without loading torch (units.py does)
    from diffprune.structure.units import Unit

RANKINGS = ("score", "score-per-cost")


@dataclass(frozen=True)
class Budget:
    keep_macs: float | None = None
    keep_params: float | None = None
    num_units: int | None = None

    def __post_init__(self):
        given = [value is not None for value in (self.keep_macs, self.keep_params, self.num_units)]
        if sum(given) > 1:
            raise DiffpruneError("give one budget: `keep_macs`, `keep_params` or `num_units`")
        for name in ("keep_macs", "keep_params"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise DiffpruneError(f"`{name}` must be between 0 and 1 (exclusive), got {value}")
        if self.num_units is not None and self.num_units < 1:
            raise DiffpruneError(f"`num_units` must be at least 1, got {self.num_units}")

    @property
    def cost(self) -> str:
        return "params" if self.keep_params is not None else "macs"

    def describe(self) -> str:
        if self.num_units is not None:
            return f"{self.num_units} units"
        if self.keep_params is not None:
            return f"keep {self.keep_params:.0%} of the denoiser's parameters"
        return f"keep {self.keep_macs:.0%} of the denoiser's MACs"

    def fraction_kept(self) -> float | None:
        return self.keep_params if self.keep_params is not None else self.keep_macs


DEFAULT_BUDGET = Budget(keep_macs=0.7)  # what prune, the CLI and budget-aware criteria use when given none


def unit_cost(unit: Unit, cost: str) -> int:
    return unit.params if cost == "params" else unit.macs


def disjoint_from(unit: Unit, chosen: list[Unit]) -> bool:
    return all(unit.name != other.name and not unit.contains(other) and not other.contains(unit) for other in chosen)


def removable_maximum(units: list[Unit], cost: str) -> int:
    """The most that can be removed: every outermost unit at once."""
    outermost = [u for u in units if not any(other.contains(u) for other in units)]
    return sum(unit_cost(u, cost) for u in outermost)


def check_reachable(units: list[Unit], budget: Budget, total_cost: int) -> None:
    """Fail before any scoring if the budget cannot be met even by removing every unit."""
    if budget.num_units is not None:
        outermost = [u for u in units if not any(other.contains(u) for other in units)]
        if budget.num_units > len(outermost):
            raise DiffpruneError(f"only {len(outermost)} non-overlapping units exist; lower `num_units`")
        return
    achievable = removable_maximum(units, budget.cost)
    if (1 - budget.fraction_kept()) * total_cost > achievable:
        raise DiffpruneError(
            f"cannot {budget.describe()}: removing every prunable unit leaves "
            f"{1 - achievable / total_cost:.1%} of the denoiser's {budget.cost}; ask to keep at least that much"
        )


def candidates_after(units: list[Unit], removed: list[Unit]) -> list[Unit]:
    """Units that can still be removed: those that overlap nothing removed, and those that contain removed units
    (removing one removes them too; select_units takes such a unit only when the budget needs it)."""
    return [unit for unit in units if not any(other.name == unit.name or other.contains(unit) for other in removed)]


def select_units(
    units: list[Unit],
    scores: dict[str, float],
    budget: Budget,
    total_cost: int,
    removed: list[Unit] = (),
    target_fraction_removed: float | None = None,
    ranking: str = "score",
) -> list[Unit]:
    """Units to remove next (not including `removed`), greedily in `ranking` order.

    `target_fraction_removed` lets progressive pruning stop at an intermediate slice of the budget.
    """
    if ranking not in RANKINGS:
        raise DiffpruneError(f"unknown ranking {ranking!r}; choose one of: {', '.join(RANKINGS)}")
    removed = list(removed)
    cost = budget.cost
    if ranking == "score":
        key = lambda u: (scores[u.name], -unit_cost(u, cost), u.name)  # noqa: E731
    else:
        key = lambda u: (scores[u.name] / max(unit_cost(u, cost), 1), scores[u.name], u.name)  # noqa: E731
    available = [unit for unit in candidates_after(units, removed) if unit.name in scores]
    ranked = sorted((unit for unit in available if disjoint_from(unit, removed)), key=key)
    if budget.num_units is not None:
        chosen: list[Unit] = []
        wanted = (
            budget.num_units if target_fraction_removed is None else round(budget.num_units * target_fraction_removed)
        )
        wanted -= len(removed)
        for unit in ranked:
            if len(chosen) >= wanted:
                break
            if disjoint_from(unit, chosen):
                chosen.append(unit)
        if len(chosen) < wanted and target_fraction_removed in (None, 1.0):
            raise DiffpruneError(
                f"only {len(removed) + len(chosen)} non-overlapping units can be removed; lower `num_units`"
            )
        return chosen

    fraction_removed = 1 - budget.fraction_kept()
    if target_fraction_removed is not None:
        fraction_removed *= target_fraction_removed
    check_reachable(units, budget, total_cost)
    removed = outermost(removed)
    tolerance = 1e-9 * total_cost  # 1 - 0.7 is 0.30000000000000004 in floating point
    still_needed = fraction_removed * total_cost - _cost_of(removed, cost)
    chosen, needed = _greedy(ranked, cost, still_needed, removed, tolerance)
    if needed > tolerance and removed:
        # What is gone can block the budget (small units removed inside the large ones the rest of it needs, by an
        # earlier round or gradflow's earlier stages): then units that contain removed ones compete too.
        enclosing = [unit for unit in available if not disjoint_from(unit, removed)]
        chosen, needed = _greedy(sorted(ranked + enclosing, key=key), cost, still_needed, removed, tolerance)
    if needed > tolerance:
        raise DiffpruneError(
            f"cannot {budget.describe()} with non-overlapping units from this ranking; keep a larger fraction"
        )
    return chosen


def outermost(units: list[Unit]) -> list[Unit]:
    """`units` without those inside another of them (removing the outer one removes them)."""
    return [u for u in units if not any(other.contains(u) for other in units)]


def _cost_of(units: list[Unit], cost: str) -> int:
    return sum(unit_cost(u, cost) for u in units)


def _greedy(ranked: list[Unit], cost: str, needed: float, removed: list[Unit], tolerance: float):
    """Take units in ranking order until `needed` more cost is removed: (chosen, cost still needed). A unit that
    contains chosen or removed units absorbs them: removing it removes them too, so the budget stays reachable
    however the small nested units were ranked."""
    chosen: list[Unit] = []
    for unit in ranked:
        if needed <= tolerance:
            break
        if any(other.contains(unit) or other.name == unit.name for other in chosen):
            continue  # already removed with a chosen ancestor
        absorbed = [other for other in chosen if unit.contains(other)]
        # removed units inside this one, not already credited to an absorbed chosen unit
        absorbed_removed = [r for r in removed if unit.contains(r) and not any(a.contains(r) for a in absorbed)]
        chosen = [other for other in chosen if other not in absorbed] + [unit]
        needed -= unit_cost(unit, cost) - _cost_of(absorbed, cost) - _cost_of(absorbed_removed, cost)
    return chosen, needed
