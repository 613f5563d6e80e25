"""eval/benchmark_criteria.py's random baseline: where the candidates are few, its row is the exact expectation over
every set random selection can remove, so each set's probability must be what random scores give it."""

import sys
from pathlib import Path

from diffprune.models.loading import load_pipeline
from diffprune.pruning.prune import prune
from diffprune.structure.selection import Budget

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))

import benchmark_criteria  # noqa: E402


def joint_blocks(unit):
    return unit.kind == "transformer_block"


def test_random_selections_are_every_set_with_its_probability_and_prune_cuts_each():
    pipeline = load_pipeline("digits-sd3")
    # five removable joint blocks of equal MACs: 0.8 of the MACs takes 2 of them (10 sets), 0.9 takes 1 (5 sets)
    for keep, count in ((0.8, 10), (0.9, 5)):
        selections = benchmark_criteria.random_selections(pipeline, keep, "transformer_block")
        assert len(selections) == count
        assert abs(sum(weight for weight, _ in selections) - 1) < 1e-12
        assert all(abs(weight - 1 / count) < 1e-12 for weight, _ in selections)
    removed = set()
    for _, scores in benchmark_criteria.random_selections(pipeline, 0.8, "transformer_block"):
        result = prune(
            pipeline,
            benchmark_criteria.FixedScores(scores),
            Budget(keep_macs=0.8),
            unit_filter=joint_blocks,
            show_progress=False,
        )
        assert len(result.removed) == 2
        assert sorted(result.removed) == sorted(sorted(scores, key=scores.get)[:2])
        removed.add(frozenset(result.removed))
    assert len(removed) == 10


def test_many_candidates_fall_back_to_draws():
    pipeline = load_pipeline("digits-sd3")
    assert benchmark_criteria.random_selections(pipeline, 0.8, None) is None
