"""Unconditional image and audio-diffusion pipelines (DDPM, DDIM, LDM, AudioDiffusion): a UNet2DModel that
denoises pixels, mel images, or VQ/VAE latents. Final latents are the denoised samples before any decoding;
they are drawn by the base adapter through the pipeline's own call, with no conditioning."""

from __future__ import annotations

from diffprune.models.adapters.base import TaskAdapter


class UnconditionalAdapter(TaskAdapter):
    def conditioning(self, sample_indices) -> dict:
        return {}
