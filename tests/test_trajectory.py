"""Recording the sampler's own path: the recorded denoiser inputs are the pipeline's own intermediate latents,
through a direct call and through calibration (a fresh scheduler per call, samples split over several calls)."""

import pytest
import torch
from test_criteria import _context
from tiny_models import tiny_ddpm_pipeline, tiny_sd_pipeline

from diffprune.errors import DiffpruneError
from diffprune.models.trajectory import recording_trajectory

PROMPTS = ["a 1", "a 2", "a 3"]


def _direct_call(pipeline, steps):
    """A plain pipeline call; returns its latents after every step (callback_on_step_end) and its first ones."""
    pipeline.set_progress_bar_config(disable=True)
    generators = [torch.Generator().manual_seed(seed) for seed in range(len(PROMPTS))]
    initial = torch.randn(len(PROMPTS), 4, 16, 16, generator=torch.Generator().manual_seed(7))
    after_step = []

    def keep(pipe, step, timestep, kwargs):
        after_step.append(kwargs["latents"].clone())
        return kwargs

    pipeline(
        prompt=PROMPTS,
        generator=generators,
        num_inference_steps=steps,
        latents=initial.clone(),
        output_type="latent",
        callback_on_step_end=keep,
    )
    return [initial * pipeline.scheduler.init_noise_sigma] + after_step[:-1]


@pytest.mark.parametrize("scheduler", ["dpm-solver", "euler"])
def test_recorded_latents_are_what_the_denoiser_receives_at_each_step(scheduler):
    pipeline = tiny_sd_pipeline(scheduler)
    with recording_trajectory(pipeline) as recorder:
        before_step = _direct_call(pipeline, 4)
    trajectory = recorder.trajectory()
    assert trajectory.guided and trajectory.latents.shape == (3, 4, 4, 16, 16)
    assert torch.equal(trajectory.timesteps, pipeline.scheduler.timesteps)
    for step, latents in enumerate(before_step):
        # the denoiser receives the scheduler's scaled input: the latents themselves for DPM-Solver, latents /
        # sqrt(sigma^2 + 1) for Euler
        scheduler_copy = type(pipeline.scheduler).from_config(pipeline.scheduler.config)
        scheduler_copy.set_timesteps(4)
        scheduler_copy._step_index = step
        expected = scheduler_copy.scale_model_input(latents, trajectory.timesteps[step])
        torch.testing.assert_close(trajectory.latents[:, step], expected, rtol=0, atol=0)


def test_calibration_records_the_same_path_as_the_pipelines_own_call():
    pipeline = tiny_sd_pipeline()
    context = _context(pipeline, prompts=PROMPTS, max_batch=2)  # 4 samples drawn in two calls of two
    trajectory = context.trajectory()
    assert trajectory.latents.shape[:2] == (4, 3) and trajectory.guided
    assert "reference_latents" in context.cache  # the same calibration run gave the final latents
    pipeline.set_progress_bar_config(disable=True)
    for first in (0, 2):
        after_step = []

        def keep(pipe, step, timestep, kwargs, after_step=after_step):
            after_step.append(kwargs["latents"].clone())
            return kwargs

        pipeline(
            prompt=context.adapter.prompts[first : first + 2],
            generator=[torch.Generator().manual_seed(seed) for seed in (first, first + 1)],
            num_inference_steps=3,
            output_type="latent",
            callback_on_step_end=keep,
        )
        for step in range(1, 3):
            assert torch.equal(trajectory.latents[first : first + 2, step], after_step[step - 1])


def test_an_unconditional_pipeline_records_one_latent_per_sample_and_step():
    pipeline = tiny_ddpm_pipeline()
    trajectory = _context(pipeline).trajectory()
    assert not trajectory.guided
    assert trajectory.latents.shape == (4, 3, 1, 16, 16) and trajectory.latents.dtype == torch.float32
    assert trajectory.timesteps.tolist() == [666, 333, 0]


def test_nothing_recorded_is_a_user_error():
    with recording_trajectory(tiny_ddpm_pipeline()) as recorder:
        pass
    with pytest.raises(DiffpruneError, match="no denoiser call was recorded"):
        recorder.trajectory()


def test_guidance_as_a_second_call_on_the_same_latents_is_recorded_once_per_step():
    """Lumina 2 guides with two denoiser calls per step (conditional, then unconditional); each step is one entry,
    the trajectory is guided, and the entries are the latents the pipeline's own steps produce."""
    from tiny_lumina2 import tiny_lumina2_pipeline

    pipeline = tiny_lumina2_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    calls, after_step = [], []
    counting = pipeline.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))

    def keep(pipe, step, timestep, kwargs):
        after_step.append(kwargs["latents"].clone())
        return kwargs

    try:
        with recording_trajectory(pipeline) as recorder:
            pipeline(
                prompt=PROMPTS[:2],
                generator=[torch.Generator().manual_seed(seed) for seed in range(2)],
                num_inference_steps=3,
                guidance_scale=4.0,
                output_type="latent",
                callback_on_step_end=keep,
            )
    finally:
        counting.remove()
    trajectory = recorder.trajectory()
    assert len(calls) == 6 and trajectory.guided and trajectory.latents.shape[:2] == (2, 3)
    for step in (1, 2):  # the denoiser's input at step s is the latents after step s - 1
        torch.testing.assert_close(trajectory.latents[:, step], after_step[step - 1].float(), rtol=0, atol=0)
