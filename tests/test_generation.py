"""generate(): one sample per seed, the same sample whatever the batch, for every pipeline family."""

import numpy as np
import pytest
import torch
from tiny_evaluation_models import tiny_audio_diffusion_pipeline, tiny_audioldm_pipeline
from tiny_models import tiny_sd_pipeline

from diffprune.errors import DiffpruneError
from diffprune.models.generation import (
    AUDIO_DIFFUSION,
    TEXT_TO_AUDIO,
    TEXT_TO_IMAGE,
    UNCONDITIONAL_IMAGE,
    generate,
    images_to_uint8,
    pipeline_family,
    sample_plan,
)


def test_families_are_told_apart_by_components(ddpm, sd):
    assert pipeline_family(ddpm) == UNCONDITIONAL_IMAGE
    assert pipeline_family(sd) == TEXT_TO_IMAGE
    assert pipeline_family(tiny_audio_diffusion_pipeline()) == AUDIO_DIFFUSION
    assert pipeline_family(tiny_audioldm_pipeline()) == TEXT_TO_AUDIO


def test_unconditional_sample_does_not_depend_on_its_batch(ddpm):
    batch = generate(ddpm, seeds=[3, 4, 5], num_inference_steps=4, batch_size=3, show_progress=False)
    alone = generate(ddpm, seeds=[4], num_inference_steps=4, batch_size=1, show_progress=False)
    assert len(batch) == 3 and batch.seeds == [3, 4, 5] and batch.audios is None
    assert torch.equal(images_to_uint8(batch.images)[1], images_to_uint8(alone.images)[0])
    other_seed = generate(ddpm, seeds=[6], num_inference_steps=4, show_progress=False)
    assert not torch.equal(images_to_uint8(other_seed.images)[0], images_to_uint8(alone.images)[0])


def test_text_to_image_sample_does_not_depend_on_its_batch(sd):
    prompts = ["a one", "a two", "a three"]
    batch = generate(sd, prompts=prompts, seeds=[0, 1, 2], num_inference_steps=3, batch_size=2, show_progress=False)
    alone = generate(sd, prompts=prompts[2:], seeds=[2], num_inference_steps=3, show_progress=False)
    images = images_to_uint8(batch.images)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[2], images_to_uint8(alone.images)[0])
    assert batch.prompts == prompts


def test_text_families_need_one_prompt_per_seed(sd):
    with pytest.raises(DiffpruneError, match="pass `prompts`"):
        generate(sd, seeds=[0, 1], show_progress=False)
    with pytest.raises(DiffpruneError, match="one prompt per seed"):
        generate(sd, prompts=["a one"], seeds=[0, 1], show_progress=False)


def test_audio_diffusion_gives_mel_images_and_audio():
    pipeline = tiny_audio_diffusion_pipeline()
    pipeline.set_progress_bar_config(disable=True)
    batch = generate(pipeline, seeds=[0, 1], num_inference_steps=3, show_progress=False)
    alone = generate(pipeline, seeds=[1], num_inference_steps=3, show_progress=False)
    assert batch.sample_rate == 8000
    assert len(batch.audios) == 2 and batch.audios[0].ndim == 1 and np.isfinite(batch.audios[0]).all()
    assert batch.images[0].mode == "L" and batch.images[0].size == (24, 16)
    assert torch.equal(images_to_uint8(batch.images)[1], images_to_uint8(alone.images)[0])


@pytest.mark.filterwarnings("ignore::UserWarning")  # librosa: a tiny vocoder's clips leave some mel bands empty
def test_text_to_audio_gives_audio_and_rendered_mel_images():
    pipeline = tiny_audioldm_pipeline()
    batch = generate(pipeline, prompts=["a dog", "rain"], seeds=[0, 1], num_inference_steps=2, show_progress=False)
    alone = generate(pipeline, prompts=["rain"], seeds=[1], num_inference_steps=2, show_progress=False)
    assert batch.sample_rate == 16000 and len(batch.audios) == 2 and batch.audios[0].ndim == 1
    assert np.allclose(batch.audios[1], alone.audios[0], atol=1e-6)
    assert batch.images[0].mode == "L" and batch.images[0].size == (128, 128)


def test_final_latents_of_a_stochastic_sampler_are_the_pipelines_own():
    """Pipelines pass `generator` to a scheduler's step only where its signature takes one; the final-latents
    stop must keep that signature, or the step noise is unseeded (and variants of a sample disagree)."""
    from diffusers import EulerAncestralDiscreteScheduler
    from tiny_models import SD_BETAS

    from diffprune.models.generation import final_latents

    pipeline = tiny_sd_pipeline()
    pipeline.scheduler = EulerAncestralDiscreteScheduler(**SD_BETAS, steps_offset=1)
    pipeline.set_progress_bar_config(disable=True)
    prompts = ["a one", "a two"]

    def generators():
        return [torch.Generator().manual_seed(seed) for seed in (0, 1)]

    latents = final_latents(pipeline, prompts, generators(), num_inference_steps=3)
    expected = pipeline(prompt=prompts, generator=generators(), num_inference_steps=3, output_type="latent").images
    torch.testing.assert_close(latents, expected, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::UserWarning")  # torchsde: the SDE sampler's last sigmas lie outside its tree
def test_stable_audio_gives_stereo_audio_at_its_vaes_rate_and_mono_mel_images():
    from tiny_stable_audio import tiny_stable_audio_pipeline

    from diffprune.models.generation import mono

    pipeline = tiny_stable_audio_pipeline()
    assert pipeline_family(pipeline) == TEXT_TO_AUDIO  # a tokenizer and a text encoder, but no vocoder
    batch = generate(pipeline, prompts=["a dog", "rain"], seeds=[0, 1], num_inference_steps=2, show_progress=False)
    alone = generate(pipeline, prompts=["rain"], seeds=[1], num_inference_steps=2, show_progress=False)
    assert batch.sample_rate == 44100 and batch.audios[0].shape == (64, 2)  # 16 latent frames x 4, stereo
    assert not np.allclose(batch.audios[0][:, 0], batch.audios[0][:, 1])  # two channels, not one repeated
    assert np.allclose(batch.audios[1], alone.audios[0], atol=1e-6)
    np.testing.assert_allclose(mono(batch.audios[0]), batch.audios[0].mean(axis=1))
    assert batch.images[0].mode == "L" and batch.images[0].size == (128, 128)


def test_sample_plan_cycles_prompts():
    seeds, prompts = sample_plan(5, seed=10, prompts=["a", "b"])
    assert seeds == [10, 11, 12, 13, 14] and prompts == ["a", "b", "a", "b", "a"]
    assert sample_plan(2)[1] is None
    with pytest.raises(DiffpruneError):
        sample_plan(0)
