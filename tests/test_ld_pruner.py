"""LD-Pruner latent impact: zero-effect units score 0, batching does not change scores, resume is exact."""

import pytest
import torch
from tiny_models import tiny_ddpm_pipeline, tiny_sd_pipeline

from diffprune.criteria import ScoringContext, get_criterion
from diffprune.criteria.ld_pruner import latent_statistics_distance
from diffprune.criteria.score_store import ScoreStore
from diffprune.errors import DiffpruneError
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.structure.units import find_units

SETTINGS = dict(num_samples=4, num_inference_steps=3, show_progress=False)


def make_zero_effect(unet, name):
    """A resnet whose second convolution is zero adds nothing to its skip: bypassing it changes nothing."""
    block = unet.get_submodule(name)
    torch.nn.init.zeros_(block.conv2.weight)
    torch.nn.init.zeros_(block.conv2.bias)


def _context(pipeline, store=None, **settings):
    adapter = adapter_for(pipeline, CalibrationSettings(**{**SETTINGS, **settings}))
    units = find_units(pipeline.unet)
    return ScoringContext(adapter, units, store or ScoreStore(None, {}), show_progress=False)


def test_distance_is_zero_for_identical_latents_and_positive_otherwise():
    latents = torch.randn(6, 4, 3, 3)
    assert latent_statistics_distance(latents, latents) == 0
    assert latent_statistics_distance(latents, latents * 1.1) > 0


def test_zero_effect_unit_scores_zero_and_others_do_not():
    pipeline = tiny_ddpm_pipeline()
    make_zero_effect(pipeline.unet, "down_blocks.0.resnets.1")
    context = _context(pipeline)
    scores = get_criterion("ld-pruner").score(context, context.units, [], 0)
    zero = scores.pop("down_blocks.0.resnets.1")
    # 0 up to float rounding: the reference and the variants run at different batch sizes
    assert zero == pytest.approx(0, abs=1e-5)
    assert min(scores.values()) > 1000 * max(zero, 1e-9)


@pytest.mark.parametrize("build", [tiny_ddpm_pipeline, tiny_sd_pipeline])
def test_batched_scores_equal_one_variant_at_a_time(build):
    pipeline = build()
    extra = {"prompts": ["a 1", "a 2"]} if build is tiny_sd_pipeline else {}
    context = _context(pipeline, **extra)
    candidates = [u for u in context.units if u.kind in ("resnet", "attention", "mid_block")][:6]
    batched = get_criterion("ld-pruner", variants_per_batch=6).score(context, candidates, [], 0)
    naive = get_criterion("ld-pruner", variants_per_batch=1).score(_context(pipeline, **extra), candidates, [], 0)
    for name in naive:
        assert batched[name] == pytest.approx(naive[name], rel=1e-4, abs=1e-6)


def test_scores_are_stored_as_computed_and_reused(tmp_path):
    pipeline = tiny_ddpm_pipeline()
    store = ScoreStore(tmp_path / "scores.json", {"a": 1})
    context = _context(pipeline, store)
    candidates = context.units[:3]
    first = get_criterion("ld-pruner", variants_per_batch=1).score(context, candidates, [], 0)
    reopened = ScoreStore(tmp_path / "scores.json", {"a": 1})
    assert reopened.resumed_count == 3
    assert {u.name: reopened.get(0, u.name) for u in candidates} == first
    with pytest.raises(DiffpruneError, match="different settings"):
        ScoreStore(tmp_path / "scores.json", {"a": 2})


def test_paired_statistic_sees_samples_that_swap_while_the_distribution_stays():
    from diffprune.criteria.ld_pruner import paired_latent_distance

    reference = torch.randn(6, 4, 8, 8)
    swapped = reference[[1, 0, 3, 2, 5, 4]]  # same set of samples, each seed now gives another one
    assert latent_statistics_distance(reference, swapped) == pytest.approx(0, abs=1e-9)
    assert paired_latent_distance(reference, swapped) > 1
    assert paired_latent_distance(reference, reference) == 0


def test_paired_statistic_scores_zero_effect_units_zero_and_is_recorded_in_the_settings():
    pipe = tiny_ddpm_pipeline()
    make_zero_effect(pipe.unet, "down_blocks.0.resnets.1")
    context = _context(pipe)
    criterion = get_criterion("ld-pruner", statistic="paired")
    scores = criterion.score(context, context.units, [], 0)
    zero = scores.pop("down_blocks.0.resnets.1")
    assert zero == pytest.approx(0, abs=1e-4)  # float rounding: reference and variants run at other batch sizes
    assert min(scores.values()) > 100 * max(zero, 1e-9)
    assert criterion.settings() == {"statistic": "paired"}
    with pytest.raises(DiffpruneError, match="statistic"):
        get_criterion("ld-pruner", statistic="median")
