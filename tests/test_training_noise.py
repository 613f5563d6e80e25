"""Every training loss noises latents the way the model was trained, whatever inference scheduler it ships.

Why: DPM-Solver's add_noise, used as a training forward process, gives signal levels of 0.073 / 0.527 / 0.996
at t = 10 / 500 / 990 where training used 0.995 / 0.526 / 0.072 (and different ones again after a pipeline
call), and it has no get_velocity; losses computed that way measure the wrong thing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from tiny_models import SD_BETAS, make_scheduler, tiny_sd_pipeline

from diffprune.errors import DiffpruneError
from diffprune.models.training_noise import TrainingNoise


def ddpm(**config):
    from diffusers import DDPMScheduler

    return DDPMScheduler(**config)


def test_signal_levels_are_the_training_betas_not_the_inference_schedulers():
    scheduler = make_scheduler("dpm-solver")
    scheduler.set_timesteps(20)  # what a pipeline call leaves behind
    noise = TrainingNoise(scheduler)
    clean, pure_noise = torch.ones(3, 1), torch.zeros(3, 1)
    timesteps = torch.tensor([10, 500, 990])
    signal = noise.noise(clean, pure_noise, timesteps).noisy.flatten()
    torch.testing.assert_close(signal, torch.tensor([0.995, 0.526, 0.072]), rtol=0, atol=2e-3)
    reference = ddpm(**SD_BETAS).add_noise(torch.ones(3, 1), torch.zeros(3, 1), timesteps).flatten()
    torch.testing.assert_close(signal, reference)


@pytest.mark.parametrize("name", ["dpm-solver-v", "ddim-v"])
def test_v_prediction_target_is_the_velocity_even_for_schedulers_without_get_velocity(name):
    noise = TrainingNoise(make_scheduler(name))
    clean, eps = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    timesteps = torch.tensor([0, 250, 600, 999])
    batch = noise.noise(clean, eps, timesteps)
    alphas = ddpm(**SD_BETAS).alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    torch.testing.assert_close(batch.target, alphas.sqrt() * eps - (1 - alphas).sqrt() * clean)
    torch.testing.assert_close(batch.noisy, alphas.sqrt() * clean + (1 - alphas).sqrt() * eps)


def test_epsilon_and_sample_targets():
    clean, eps, timesteps = torch.randn(2, 4), torch.randn(2, 4), torch.tensor([3, 700])
    assert torch.equal(TrainingNoise(make_scheduler("euler")).noise(clean, eps, timesteps).target, eps)
    sample_model = TrainingNoise(ddpm(prediction_type="sample"))
    assert torch.equal(sample_model.noise(clean, eps, timesteps).target, clean)


def test_flow_matching_interpolates_and_regresses_the_velocity():
    from diffusers import FlowMatchEulerDiscreteScheduler

    noise = TrainingNoise(FlowMatchEulerDiscreteScheduler(shift=3.0))
    clean, eps = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    positions = torch.tensor([0, 500, 999])
    batch = noise.noise(clean, eps, positions)
    plain = (positions + 1).double() / 1000
    sigmas = (3 * plain / (1 + 2 * plain)).float()  # SD3's shift of 3.0, applied to the training sigmas
    torch.testing.assert_close(batch.timesteps, sigmas * 1000)
    expected = (1 - sigmas.view(-1, 1, 1, 1)) * clean + sigmas.view(-1, 1, 1, 1) * eps
    torch.testing.assert_close(batch.noisy, expected)
    torch.testing.assert_close(batch.target, eps - clean)


def test_flow_sigmas_on_a_dpm_solver_config_count_as_flow_matching():
    """Sana ships DPM-Solver with flow sigmas and prediction_type flow_prediction."""
    config = make_scheduler("dpm-solver").config
    noise = TrainingNoise({**config, "use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 3.0})
    assert noise.is_flow_matching and noise.prediction_type == "flow_prediction"


@pytest.mark.parametrize(
    ("sigma_data", "prediction_type"), [(1.0, "v_prediction"), (0.5, "v_prediction"), (0.5, "epsilon")]
)
def test_v_diffusion_is_the_edm_preconditioning_its_scheduler_samples_with(sigma_data, prediction_type):
    """Stable Audio Open: x = x_0 + sigma eps, the model sees the scheduler's precondition_inputs(x) at its
    precondition_noise(sigma), and the target is the output from which precondition_outputs gives x_0 back."""
    from diffusers import CosineDPMSolverMultistepScheduler

    scheduler = CosineDPMSolverMultistepScheduler(sigma_data=sigma_data, prediction_type=prediction_type)
    noise = TrainingNoise(scheduler)
    clean, eps = torch.randn(5, 4, 16, dtype=torch.float64), torch.randn(5, 4, 16, dtype=torch.float64)
    positions = torch.tensor([0, 1, 400, 998, 999])
    batch = noise.noise(clean, eps, positions)
    sigma = noise.sigmas[positions].view(-1, 1, 1)
    noised = clean + sigma * eps
    torch.testing.assert_close(batch.noisy, scheduler.precondition_inputs(noised, sigma))
    torch.testing.assert_close(batch.timesteps, scheduler.precondition_noise(sigma.flatten()).float())
    torch.testing.assert_close(scheduler.precondition_outputs(noised, batch.target, sigma), clean)


def test_v_diffusion_draws_timesteps_uniformly_over_the_schedulers_sigma_range():
    """As the cosine (v) objective draws t uniformly, within the sigmas the sampler visits (0.3..500 for
    Stable Audio Open); at sigma_data = 1 the target is the velocity cos(t pi/2) eps - sin(t pi/2) x_0."""
    import math

    from tiny_stable_audio import cosine_dpm_solver

    noise = TrainingNoise(cosine_dpm_solver())
    assert noise.is_v_diffusion and noise.prediction_type == "v_prediction"
    torch.testing.assert_close(noise.sigmas[[0, -1]], torch.tensor([0.3, 500.0], dtype=torch.float64))
    positions = torch.arange(1000)
    clean, eps = torch.randn(1000, 2, 3), torch.randn(1000, 2, 3)
    batch = noise.noise(clean, eps, positions)
    low, high = (math.atan(sigma) * 2 / math.pi for sigma in (0.3, 500.0))
    torch.testing.assert_close(batch.timesteps, torch.linspace(low, high, 1000))
    angle = batch.timesteps.view(-1, 1, 1) * math.pi / 2
    torch.testing.assert_close(batch.target, angle.cos() * eps - angle.sin() * clean)
    torch.testing.assert_close(batch.noisy, angle.cos() * clean + angle.sin() * eps)


def test_unsupported_training_setups_are_one_line_errors():
    from diffusers import EDMEulerScheduler

    with pytest.raises(DiffpruneError, match="EDMEulerScheduler .*no betas"):
        TrainingNoise(EDMEulerScheduler())
    with pytest.raises(DiffpruneError, match="prediction_type 'x0' .* supported"):
        TrainingNoise({**make_scheduler("ddpm").config, "prediction_type": "x0"})


def test_noised_batches_take_the_clean_latents_dtype():
    noise = TrainingNoise(make_scheduler("dpm-solver-v"))
    clean = torch.randn(2, 4, 8, 8, dtype=torch.bfloat16)
    batch = noise.draw(clean, torch.Generator().manual_seed(0))
    assert batch.noisy.dtype == batch.target.dtype == torch.bfloat16
    assert batch.timesteps.device == clean.device


def test_a_seed_gives_the_same_batch_whatever_the_dtype():
    noise = TrainingNoise(make_scheduler("ddpm"))
    clean = torch.randn(2, 1, 4, 4)
    first = noise.draw(clean, torch.Generator().manual_seed(3))
    second = noise.draw(clean.bfloat16(), torch.Generator().manual_seed(3))
    assert torch.equal(first.timesteps, second.timesteps)
    torch.testing.assert_close(second.noisy.float(), first.noisy, rtol=2e-2, atol=2e-2)


def test_losses_run_on_a_v_prediction_dpm_solver_pipeline():
    """Both losses used to call the inference scheduler's get_velocity, which DPM-Solver lacks."""
    import diffprune
    from diffprune.models.adapters import CalibrationSettings
    from diffprune.models.components import with_unet
    from diffprune.recovery.distillation import DistillSettings, distill

    pipe = tiny_sd_pipeline("dpm-solver-v")
    calibration = CalibrationSettings(
        num_samples=2, num_inference_steps=2, prompts=["a cat", "a dog"], show_progress=False
    )
    result = diffprune.prune(
        pipe,
        diffprune.criteria.Taylor(num_batches=1, batch_size=2),
        diffprune.Budget(num_units=1),
        calibration=calibration,
        show_progress=False,
    )
    assert len(result.removed) == 1
    student = with_unet(pipe, diffprune.remove_units(pipe.unet, result.removed))
    _, history = distill(
        student, pipe, DistillSettings(steps=1, batch_size=2, ema_decay=None), calibration, show_progress=False
    )
    assert torch.isfinite(torch.tensor(history[0]["loss"]))


def test_digits_t2i_losses_match_its_training_scripts_loss():
    """The same latents, noise and timesteps give the loss train_digits_t2i.py minimised (DDPM betas), not
    the one the shipped DPM-Solver's add_noise would give."""
    import torch.nn.functional as F

    from diffprune.models.adapters import CalibrationSettings, adapter_for
    from diffprune.models.loading import load_pipeline

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "assets" / "training"))
    from train_digits_t2i import BETAS

    pipe = load_pipeline("digits-t2i")
    adapter = adapter_for(pipe, CalibrationSettings(num_samples=8, num_inference_steps=10, show_progress=False))
    clean = adapter.final_latents(1)[:, 0]
    indices = list(range(8))
    ours = adapter.denoising_loss(pipe.unet, clean, indices, torch.Generator().manual_seed(0))

    generator = torch.Generator().manual_seed(0)  # the same draws, in the same order: noise, then timesteps
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, 1000, (8,), generator=generator)
    noisy = ddpm(**BETAS).add_noise(clean, noise, timesteps)
    with torch.no_grad():
        prediction = pipe.unet(noisy, timesteps, **adapter.conditioning(indices)).sample
    expected = F.mse_loss(prediction, noise)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    assert float(expected) < 0.5, "a trained model's own samples at training noise levels are easy to denoise"
