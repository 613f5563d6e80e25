"""Every registered criterion: finite scores, zero-effect units safest (data-driven ones), the registry."""

import dataclasses
import math

import pytest
from test_ld_pruner import make_zero_effect
from tiny_models import tiny_ddpm_pipeline

from diffprune.criteria import BUILTIN_CRITERIA, ScoringContext, available_criteria, get_criterion, registry
from diffprune.criteria.score_store import ScoreStore
from diffprune.errors import DiffpruneError
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.structure.selection import Budget
from diffprune.structure.units import find_units

DATA_DRIVEN = ["ld-pruner", "taylor", "output-loss", "gradflow"]
FAST_OPTIONS = {"gradflow": {"steps": 9, "stages": 3, "batch_size": 4}, "taylor": {"num_batches": 2, "batch_size": 4}}
ZERO = "down_blocks.0.resnets.1"


def _context(pipeline, **settings):
    adapter = adapter_for(
        pipeline, CalibrationSettings(num_samples=4, num_inference_steps=3, show_progress=False, **settings)
    )
    units = find_units(pipeline.unet)
    costs = {"macs": sum(u.macs for u in units) * 2, "params": sum(u.params for u in units) * 2}
    return ScoringContext(
        adapter, units, ScoreStore(None, {}), show_progress=False, budget=Budget(keep_macs=0.9), total_costs=costs
    )


def test_registry_lists_headline_methods_and_baselines():
    assert set(available_criteria()) == {"ld-pruner", "gradflow", "magnitude", "taylor", "output-loss", "random"}
    assert set(registry()) == set(BUILTIN_CRITERIA)  # every listed module registers the name it is listed under
    with pytest.raises(DiffpruneError, match="unknown criterion 'nope'; choose one of"):
        get_criterion("nope")


@pytest.mark.parametrize("name", ["ld-pruner", "gradflow", "magnitude", "taylor", "output-loss", "random"])
def test_one_name_per_criterion_across_key_module_and_class(name):
    criterion = get_criterion(name)
    module = type(criterion).__module__.rsplit(".", 1)[1]
    assert criterion.name == name and module == name.replace("-", "_")
    assert type(criterion).__name__.lower() == name.replace("-", "")
    assert dataclasses.is_dataclass(criterion)  # its fields are its typed options


def test_settings_record_what_changes_scores_and_not_batching():
    assert get_criterion("ld-pruner", variants_per_batch=2).settings() == {
        "statistic": "distribution",
        "allocation": "adaptive",
    }
    assert "checkpoint_every" not in get_criterion("gradflow").settings()
    assert get_criterion("random", seed=4).settings() == {"seed": 4}


@pytest.mark.parametrize("name", ["ld-pruner", "gradflow", "magnitude", "taylor", "output-loss", "random"])
def test_every_unit_gets_a_finite_score(sd, name):
    context = _context(sd, prompts=["a 1", "a 2"])
    candidates = [u for u in context.units if u.kind in ("resnet", "attention", "mid_block", "cross_attention")]
    scores = get_criterion(name, **FAST_OPTIONS.get(name, {})).score(context, candidates, [], 0)
    assert set(scores) == {u.name for u in candidates}
    assert all(math.isfinite(value) for value in scores.values())


@pytest.mark.parametrize("name", DATA_DRIVEN)
def test_zero_effect_unit_ranks_safest(name):
    pipeline = tiny_ddpm_pipeline()
    make_zero_effect(pipeline.unet, ZERO)
    context = _context(pipeline)
    scores = get_criterion(name, **FAST_OPTIONS.get(name, {})).score(context, context.units, [], 0)
    assert min(scores, key=scores.get) == ZERO


def test_gradient_flow_masks_reach_zero_for_marked_units_and_stay_near_one_for_kept(ddpm):
    context = _context(ddpm)
    get_criterion("gradflow", steps=12, stages=3, batch_size=4).score(context, context.units, [], 0)
    masks = context.cache["gradflow_masks"]
    removed = [name for name, value in masks.items() if value == 0.0]
    kept = [name for name, value in masks.items() if value > 0.0]
    assert removed and kept
    assert sum(masks[name] for name in kept) / len(kept) > 0.8


@pytest.mark.parametrize("marking", ["gradient-flow", "energy", "mask"])
def test_units_gradient_flow_marked_score_below_every_unmarked_one(sd, marking):
    context = _context(sd, prompts=["a 1", "a 2"])
    options = {**FAST_OPTIONS["gradflow"], "marking": marking}
    scores = get_criterion("gradflow", **options).score(context, context.units, [], 0)
    marked = {name for name, value in context.cache["gradflow_masks"].items() if value == 0.0}
    assert marked and len(marked) < len(scores)
    assert max(scores[name] for name in marked) < min(scores[name] for name in scores if name not in marked)
