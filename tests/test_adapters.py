"""Calibration draws exactly what the pipeline draws.

Why: LD-Pruner scores units by how far the final latents move, and the loss-based criteria and distillation
train on the original's own samples. A calibration sampler that differs from the pipeline's (DDIM's default
clip_sample=True on real SD latents, say) scores and trains on samples users never see. The fixtures use
the scheduler configs real pipelines ship, and every family is compared with the pipeline's own output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from tiny_models import LATENT_SCHEDULERS, tiny_ddpm_pipeline, tiny_sd_pipeline

from diffprune.models.adapters import CalibrationSettings, adapter_for

PROMPTS = ["a cat", "a dog", "a red house"]
STEPS = 4


def generators(count: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in range(count)]


@pytest.mark.parametrize("scheduler", sorted(LATENT_SCHEDULERS))
def test_text_to_image_calibration_equals_the_pipelines_latents(scheduler):
    pipe = tiny_sd_pipeline(scheduler)
    settings = CalibrationSettings(num_samples=3, num_inference_steps=STEPS, prompts=PROMPTS, show_progress=False)
    calibrated = adapter_for(pipe, settings).final_latents(1)[:, 0]
    expected = pipe(PROMPTS, num_inference_steps=STEPS, generator=generators(3), output_type="latent").images
    torch.testing.assert_close(calibrated, expected.float(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("scheduler", ["ddpm", "ddim", "ddpm-v"])
def test_pixel_calibration_equals_the_pipelines_samples(scheduler):
    """DDPM's sampler is stochastic and clips x0 (clip_sample=True, as shipped): both must match the pipeline,
    whose output is the final sample mapped to [0, 1] and clamped."""
    pipe = tiny_ddpm_pipeline(scheduler)
    settings = CalibrationSettings(num_samples=3, num_inference_steps=STEPS, show_progress=False)
    calibrated = adapter_for(pipe, settings).final_latents(1)[:, 0]
    expected = pipe(batch_size=3, num_inference_steps=STEPS, generator=generators(3), output_type="pt").images
    torch.testing.assert_close((calibrated / 2 + 0.5).clamp(0, 1), expected, rtol=0, atol=1e-6)


def test_every_variant_of_a_sample_sees_the_same_noise_even_with_a_stochastic_sampler():
    pipe = tiny_ddpm_pipeline("ddpm")
    settings = CalibrationSettings(num_samples=2, num_inference_steps=STEPS, show_progress=False)
    latents = adapter_for(pipe, settings).final_latents(3)  # no gates: three identical variants
    for variant in (1, 2):  # up to float rounding of batched kernels (measured 2e-6); other noise would be O(1)
        torch.testing.assert_close(latents[:, variant], latents[:, 0], rtol=0, atol=1e-5)
    assert not torch.equal(latents[0, 0], latents[1, 0]), "different seeds give different samples"


def test_calibration_leaves_the_pipelines_scheduler_as_it_was():
    pipe = tiny_sd_pipeline("dpm-solver")
    scheduler = pipe.scheduler
    settings = CalibrationSettings(num_samples=2, num_inference_steps=STEPS, prompts=PROMPTS, show_progress=False)
    adapter_for(pipe, settings).final_latents(1)
    assert pipe.scheduler is scheduler
    assert scheduler.num_inference_steps is None, "calibration ran on a copy; the original was never set up"


def test_digits_t2i_calibration_samples_show_the_prompted_digit():
    """The bundled judge reads the prompted digit off decoded calibration samples as often as off the
    pipeline's own (100% there); DDIM with clip_sample=True managed 7%, below chance."""
    from diffprune.evaluation.metrics.feature_networks import FeatureClassifier
    from diffprune.models.loading import load_pipeline
    from diffprune.models.prompts import default_prompts
    from diffprune.models.zoo import bundled_path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "assets" / "training"))
    from digit_prompts import digit_of_prompt

    pipe = load_pipeline("digits-t2i")
    settings = CalibrationSettings(
        num_samples=30, num_inference_steps=10, prompts=default_prompts(pipe, "digits-t2i"), show_progress=False
    )
    adapter = adapter_for(pipe, settings)
    latents = adapter.final_latents(1)[:, 0]
    with torch.no_grad():
        images = (pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
        predicted = FeatureClassifier.from_pretrained(bundled_path("digits-features")).eval().classify(images).argmax(1)
    wanted = torch.tensor([digit_of_prompt(prompt) for prompt in adapter.prompts])
    assert (predicted == wanted).float().mean() >= 0.95
