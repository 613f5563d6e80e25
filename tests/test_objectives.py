"""The guided objective (criteria/objectives.py): on the recorded trajectory it reproduces, for every family, the
guided prediction the pipeline's own sampler steps with; it is zero for the original and sees what cross-attention
carries, which the plain denoising loss misses."""

import pytest
import torch
from test_criteria import _context
from tiny_models import tiny_sd_pipeline
from tiny_transformers import (
    tiny_dit_pipeline,
    tiny_flux_pipeline,
    tiny_pixart_sigma_pipeline,
    tiny_sana_pipeline,
    tiny_sd3_pipeline,
)

import diffprune
from diffprune.criteria import ScoringContext, get_criterion
from diffprune.criteria.objectives import GuidedObjective, guided_objective, resolved_objective
from diffprune.criteria.score_store import ScoreStore
from diffprune.errors import DiffpruneError
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.models.generation import CLASS_CONDITIONAL_IMAGE, class_ids, pipeline_family
from diffprune.models.trajectory import recording_trajectory
from diffprune.structure.gates import gated, removal_values

PROMPTS = ["a 1", "b 2"]
FAMILIES = {  # builder, prompts, whether the pipeline samples with classifier-free guidance by default
    "sd": (tiny_sd_pipeline, PROMPTS, True),
    "sd3": (tiny_sd3_pipeline, PROMPTS, True),
    "flux": (tiny_flux_pipeline, PROMPTS, False),  # guidance-distilled: no unconditional half
    "pixart-sigma": (tiny_pixart_sigma_pipeline, PROMPTS, True),
    "sana": (tiny_sana_pipeline, PROMPTS, True),  # its negative prompt goes without the complex human instruction
    "dit": (tiny_dit_pipeline, ["goldfish", "207"], True),  # the null class 1000 is the unconditional half
}


def _sampled_with_step_outputs(pipeline, prompts, steps=3):
    """The pipeline's own call, recorded; returns (trajectory, what its scheduler stepped with at each step)."""
    stepped, step = [], pipeline.scheduler.step

    def keep(model_output, *args, **kwargs):
        stepped.append(model_output.detach().float().clone())
        return step(model_output, *args, **kwargs)

    pipeline.scheduler.step = keep
    pipeline.set_progress_bar_config(disable=True)
    generators = [torch.Generator().manual_seed(seed) for seed in range(len(prompts))]
    try:
        with recording_trajectory(pipeline) as recorder:
            if pipeline_family(pipeline) == CLASS_CONDITIONAL_IMAGE:
                labels = class_ids(pipeline, prompts)
                pipeline(class_labels=labels, generator=generators, num_inference_steps=steps, output_type="latent")
            else:
                pipeline(prompt=prompts, generator=generators, num_inference_steps=steps, output_type="latent")
    finally:
        del pipeline.scheduler.step
    return recorder.trajectory(), stepped


@pytest.mark.parametrize("family", list(FAMILIES))
def test_replayed_guided_prediction_is_what_the_pipeline_steps_with(family):
    build, prompts, guided = FAMILIES[family]
    pipeline = build()
    trajectory, stepped = _sampled_with_step_outputs(pipeline, prompts)
    assert trajectory.guided == guided
    adapter = adapter_for(pipeline, CalibrationSettings(num_samples=len(prompts), prompts=prompts))
    context = ScoringContext(adapter, [], ScoreStore(None, {}), cache={"trajectory": trajectory})
    objective = GuidedObjective(context)
    replayed = objective.teacher_guided.view(len(prompts), trajectory.num_steps, *stepped[0].shape[1:])
    for step, expected in enumerate(stepped):
        expected = expected[: len(prompts)]  # DiT steps both guidance halves, which hold the same prediction
        torch.testing.assert_close(replayed[:, step], expected, rtol=1e-4, atol=1e-5)


def test_the_original_has_zero_error_and_a_removed_unit_does_not(sd):
    pipeline = sd
    context = _context(pipeline, prompts=PROMPTS)
    objective = guided_objective(context)
    pairs = torch.arange(12)
    assert objective.errors(pipeline.unet, pairs).abs().max() < 1e-10
    cross = context.units.index(next(u for u in context.units if u.kind == "cross_attention"))
    with gated(pipeline.unet, context.units, removal_values(context.units, {context.units[cross].name})):
        assert objective.errors(pipeline.unet, pairs).min() > 0
    assert guided_objective(context) is objective  # the original's predictions are computed once


def _mean_rank_of(scores, names):
    order = sorted(scores, key=scores.get)
    return sum(order.index(name) for name in names) / len(names)


@pytest.mark.parametrize("criterion", ["output-loss", "taylor"])
def test_cross_attention_matters_more_under_the_guided_objective_than_under_the_denoising_loss(sd, criterion):
    pipeline = sd
    ranks = {}
    for objective in ("denoising-loss", "guided"):
        context = _context(pipeline, prompts=["a 1", "a 2", "b 3", "b 4"])
        scores = get_criterion(criterion, objective=objective).score(context, context.units, [], 0)
        cross = [u.name for u in context.units if u.kind == "cross_attention"]
        ranks[objective] = _mean_rank_of(scores, cross)
    assert ranks["guided"] > ranks["denoising-loss"]


def test_the_objective_is_recorded_in_the_settings_and_checked():
    assert get_criterion("gradflow").settings()["objective"] == "auto"
    assert get_criterion("output-loss", objective="denoising-loss").settings()["objective"] == "denoising-loss"
    with pytest.raises(DiffpruneError, match="unknown objective 'noise'; choose one of auto, guided, denoising-loss"):
        get_criterion("taylor", objective="noise")
    with pytest.raises(DiffpruneError, match="unknown marking rule"):
        get_criterion("gradflow", marking="largest")


@pytest.mark.parametrize("criterion", ["output-loss", "taylor", "gradflow"])
def test_a_bf16_pipeline_prunes_with_the_guided_objective(criterion):
    pipeline = tiny_sd_pipeline().to(torch.bfloat16)
    options = {"gradflow": {"steps": 8, "stages": 2, "batch_size": 4}}.get(criterion, {})
    result = diffprune.prune(
        pipeline,
        get_criterion(criterion, **options),
        diffprune.Budget(num_units=2),
        calibration=CalibrationSettings(num_samples=2, num_inference_steps=2, prompts=PROMPTS),
        show_progress=False,
    )
    assert len(result.removed) == 2
    assert all(torch.isfinite(torch.tensor(list(result.scores.values()))))
    assert len(set(result.scores.values())) > 1


def test_an_unconditional_pipeline_compares_its_plain_prediction(ddpm):
    context = _context(ddpm)
    objective = guided_objective(context)
    assert not objective.guided and objective.teacher_direction is None
    assert objective.teacher_guided.shape == (4 * 3, 1, 16, 16)


def test_auto_is_guided_with_a_prompt_and_the_denoising_loss_without(sd, ddpm):
    conditioned, unconditional = _context(sd, prompts=PROMPTS), _context(ddpm)
    assert resolved_objective(get_criterion("taylor"), conditioned) == "guided"
    assert resolved_objective(get_criterion("taylor"), unconditional) == "denoising-loss"
    assert resolved_objective(get_criterion("taylor", objective="guided"), unconditional) == "guided"
    # the default on an unconditional model scores exactly as the denoising loss does
    for name in ("output-loss", "taylor"):
        scores = {}
        for objective in ("auto", "denoising-loss"):
            context = _context(ddpm)
            scores[objective] = get_criterion(name, objective=objective).score(context, context.units, [], 0)
        assert scores["auto"] == scores["denoising-loss"]
