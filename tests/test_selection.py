import pytest

from diffprune.errors import DiffpruneError
from diffprune.structure.selection import DEFAULT_BUDGET, Budget, removable_maximum, select_units
from diffprune.structure.units import Unit


def unit(name, macs, params=10):
    return Unit(name, "resnet", params, macs, "residual")


UNITS = [unit("a", 40), unit("a.x", 30), unit("b", 30), unit("c", 20), unit("d", 10)]
TOTAL = 200  # the rest of the model costs 100


def test_lowest_score_first_and_never_overlapping():
    scores = {"a": 4.0, "a.x": 0.0, "b": 3.0, "c": 1.0, "d": 0.5}
    chosen = select_units(UNITS, scores, Budget(keep_macs=0.7), TOTAL)
    names = [u.name for u in chosen]
    assert names == ["a.x", "d", "c"]  # zero score first; "a" overlaps a.x
    assert sum(u.macs for u in chosen) >= 0.3 * TOTAL


def test_score_per_cost_ranking_prefers_cheap_savings():
    scores = {"a": 2.0, "a.x": 3.0, "b": 1.5, "c": 0.1, "d": 0.1}
    per_cost = [u.name for u in select_units(UNITS, scores, Budget(keep_macs=0.7), TOTAL, ranking="score-per-cost")]
    assert per_cost[0] == "c"  # 0.1 / 20 beats 0.1 / 10
    with pytest.raises(DiffpruneError, match="unknown ranking"):
        select_units(UNITS, scores, Budget(keep_macs=0.7), TOTAL, ranking="nope")


def test_unreachable_budget_says_the_most_that_can_be_removed():
    with pytest.raises(DiffpruneError, match="leaves 50.0% of the denoiser's macs"):
        select_units(UNITS, {u.name: 1.0 for u in UNITS}, Budget(keep_macs=0.3), TOTAL)
    assert removable_maximum(UNITS, "macs") == 100


def test_budget_validation():
    with pytest.raises(DiffpruneError, match="between 0 and 1"):
        Budget(keep_macs=1.5)
    with pytest.raises(DiffpruneError, match="one budget"):
        Budget(keep_macs=0.5, num_units=3)
    assert DEFAULT_BUDGET == Budget(keep_macs=0.7)


def test_unit_count_budget_and_progressive_slices():
    scores = {u.name: i for i, u in enumerate(UNITS)}
    assert len(select_units(UNITS, scores, Budget(num_units=2), TOTAL)) == 2
    half = select_units(UNITS, scores, Budget(keep_macs=0.7), TOTAL, target_fraction_removed=0.5)
    assert 0.15 * TOTAL <= sum(u.macs for u in half) < 0.3 * TOTAL


def test_a_containing_unit_absorbs_chosen_descendants_when_the_budget_needs_it():
    units = [unit("a", 60), unit("a.x", 5), unit("a.y", 5), unit("b", 10)]
    scores = {"a.x": 0.1, "a.y": 0.2, "b": 0.3, "a": 0.4}
    chosen = [u.name for u in select_units(units, scores, Budget(keep_macs=0.5), 100)]
    assert sorted(chosen) == ["a", "b"]


def test_a_unit_containing_removed_ones_competes_when_they_block_the_budget():
    # gradflow's first stage marked a.x; the rest of the budget needs "a", which overlaps it
    units = [unit("a", 60), unit("a.x", 5), unit("a.y", 5), unit("b", 10)]
    removed = [units[1]]
    scores = {"a.y": 0.1, "b": 0.2, "a": 0.3}
    assert [u.name for u in select_units(units, scores, Budget(keep_macs=0.8), 100, removed)] == ["a.y", "b"]
    chosen = select_units(units, scores, Budget(keep_macs=0.4), 100, removed)
    assert sorted(u.name for u in chosen) == ["a", "b"]  # a absorbs a.x (removed) and a.y (chosen first)
    # a (60) and b (10) are all that can go: exactly 0.3 is kept, a.x and a.y counted once inside a
    assert sorted(u.name for u in select_units(units, scores, Budget(keep_macs=0.3), 100, removed)) == ["a", "b"]
    with pytest.raises(DiffpruneError, match="leaves 30.0%"):
        select_units(units, scores, Budget(keep_macs=0.29), 100, removed)
    with pytest.raises(DiffpruneError, match="non-overlapping units"):
        select_units(units, {"a.y": 0.1, "b": 0.2}, Budget(keep_macs=0.4), 100, removed)
