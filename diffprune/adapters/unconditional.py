"""Unconditional image and audio-diffusion pipelines (DDPM, DDIM, LDM, AudioDiffusion): a UNet2DModel that
denoises pixels, mel images, or VQ/VAE latents. Final latents are the denoised samples before any decoding."""

from __future__ import annotations

import torch

from ..unet_inputs import sample_shape
from .base import TaskAdapter


class UnconditionalAdapter(TaskAdapter):
    def initial_noise(self, sample_indices) -> torch.Tensor:
        shape = sample_shape(self.unet)[1:]
        seeds = self.seeds()
        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(seeds[i])) for i in sample_indices])

    def conditioning(self, sample_indices) -> dict:
        return {}

    def _generate(self, sample_indices, variants: int) -> torch.Tensor:
        scheduler = self.pipeline.scheduler  # the deterministic DDIM installed by final_latents
        scheduler.set_timesteps(self.settings.num_inference_steps)
        dtype = next(self.unet.parameters()).dtype
        sample = self.initial_noise(sample_indices).repeat_interleave(variants, dim=0)
        sample = (sample * scheduler.init_noise_sigma).to(self.device, dtype)
        for timestep in scheduler.timesteps:
            model_input = scheduler.scale_model_input(sample, timestep)
            prediction = self.unet(model_input, timestep).sample
            sample = scheduler.step(prediction, timestep, sample).prev_sample
        return sample
