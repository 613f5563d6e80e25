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


def test_scores_are_stored_as_computed_and_reused(ddpm, tmp_path):
    pipeline = ddpm
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
    assert criterion.settings() == {"statistic": "paired", "allocation": "adaptive"}
    with pytest.raises(DiffpruneError, match="statistic"):
        get_criterion("ld-pruner", statistic="median")


# -- adaptive allocation ------------------------------------------------------------------------------


def _prune_ldp(pipeline, allocation, budget, work_dir=None, **calibration):
    from diffprune.criteria import LDPruner
    from diffprune.pruning.prune import prune

    settings = CalibrationSettings(**{**SETTINGS, **calibration})
    return prune(
        pipeline,
        LDPruner(allocation=allocation),
        budget,
        calibration=settings,
        show_progress=False,
        work_dir=work_dir,
        variants_per_batch=3,
    )


def _round_cost(result):
    return result.report["scoring"]["ld_pruner_rounds"]["0"]


def test_adaptive_selects_as_exhaustive_on_a_clear_budget_line_with_fewer_denoiser_calls():
    from diffprune.structure.selection import Budget

    pipeline = tiny_ddpm_pipeline()
    zero = ["down_blocks.0.resnets.0", "down_blocks.0.resnets.1", "down_blocks.1.resnets.1"]
    for name in zero:
        make_zero_effect(pipeline.unet, name)
    steps, samples = 2, 16
    adaptive = _prune_ldp(pipeline, "adaptive", Budget(num_units=3), num_samples=samples, num_inference_steps=steps)
    exhaustive = _prune_ldp(pipeline, "exhaustive", Budget(num_units=3), num_samples=samples, num_inference_steps=steps)
    assert sorted(adaptive.removed) == sorted(exhaustive.removed) == sorted(zero)
    spent, full = _round_cost(adaptive), _round_cost(exhaustive)
    units = len(adaptive.report["units"])
    # DDPM without guidance: one denoiser evaluation per sample and step, counted at the denoiser
    assert full["denoiser_evaluations"] == full["exhaustive_denoiser_evaluations"] == units * samples * steps
    assert spent["exhaustive_denoiser_evaluations"] == full["denoiser_evaluations"]
    assert spent["denoiser_evaluations"] == steps * sum(spent["samples_per_candidate"].values())
    assert spent["denoiser_evaluations"] < full["denoiser_evaluations"] / 2


def test_adaptive_scores_at_full_samples_equal_exhaustive_scores(sd):
    from diffprune.structure.selection import Budget

    pipeline = sd
    extra = dict(num_samples=3, prompts=["a 1", "a 2"])  # 3 samples: every candidate starts with all of them
    adaptive = _prune_ldp(pipeline, "adaptive", Budget(keep_macs=0.7), **extra)
    exhaustive = _prune_ldp(pipeline, "exhaustive", Budget(keep_macs=0.7), **extra)
    assert set(_round_cost(adaptive)["samples_per_candidate"].values()) == {3}
    # equal up to float rounding: the candidates share batches of other sizes
    assert adaptive.scores == pytest.approx(exhaustive.scores, rel=1e-4, abs=1e-6)
    assert adaptive.removed == exhaustive.removed


def test_an_interrupted_adaptive_round_resumes_to_the_same_result(ddpm, tmp_path, monkeypatch):
    from diffprune.models.adapters.base import TaskAdapter
    from diffprune.structure.selection import Budget

    arguments = dict(num_samples=12, num_inference_steps=2, max_batch=8)
    uninterrupted = _prune_ldp(ddpm, "adaptive", Budget(keep_macs=0.7), **arguments)
    original = TaskAdapter.final_latents
    calls = {"count": 0}

    def generate_then_interrupt(self, variants=1, description=None, samples=None):
        calls["count"] += 1
        if calls["count"] == 4:  # the reference, then two batches of candidates
            raise KeyboardInterrupt
        return original(self, variants, description, samples)

    monkeypatch.setattr(TaskAdapter, "final_latents", generate_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _prune_ldp(ddpm, "adaptive", Budget(keep_macs=0.7), work_dir=tmp_path, **arguments)
    monkeypatch.setattr(TaskAdapter, "final_latents", original)
    assert len(list((tmp_path / "ld-pruner-samples" / "round-0").glob("*.safetensors"))) == 2
    resumed = _prune_ldp(ddpm, "adaptive", Budget(keep_macs=0.7), work_dir=tmp_path, **arguments)
    assert resumed.removed == uninterrupted.removed
    assert resumed.scores == pytest.approx(uninterrupted.scores)
    cost, first = _round_cost(resumed), _round_cost(uninterrupted)
    assert cost["samples_resumed"] > 0
    assert cost["samples_per_candidate"] == first["samples_per_candidate"]
    assert cost["denoiser_evaluations"] < first["denoiser_evaluations"]


def test_allocation_is_an_option_that_changes_the_settings():
    criterion = get_criterion("ld-pruner", allocation="exhaustive")
    assert criterion.settings() == {"statistic": "distribution", "allocation": "exhaustive"}
    assert not criterion.uses_budget and get_criterion("ld-pruner").uses_budget
    with pytest.raises(DiffpruneError, match="allocation"):
        get_criterion("ld-pruner", allocation="sometimes")
