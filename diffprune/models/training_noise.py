"""How the denoiser was trained: noising clean latents and the regression target, for every training loss.

A pipeline ships an *inference* scheduler (DPM-Solver, Euler, UniPC, PNDM, ...). Its `add_noise` is not the
training forward process: DPM-Solver's, after a pipeline call, noises at the sigmas of the last sampling
schedule, and it has no `get_velocity` at all. Every loss in diffprune (loss-based criteria, distillation)
therefore noises through `TrainingNoise`, built from the model's *training* configuration read off the
scheduler config (the betas and prediction type every diffusers scheduler records):

  * DDPM-family models (epsilon, v_prediction, sample): a `DDPMScheduler` with the same betas,
    x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps at t ~ U{0..T-1}; target eps, v = sqrt(a_t) eps - sqrt(1 - a_t) x_0, or x_0.
  * Flow-matching models (FlowMatch* schedulers, DPM-Solver with flow sigmas): x_s = (1 - s) x_0 + s eps with
    s from the scheduler's own (shifted) training sigmas, drawn uniformly; the model sees t = s T and
    regresses the velocity eps - x_0 (as diffusers' SD3/FLUX training scripts do).
  * v-diffusion models sampled with EDM preconditioning (CosineDPMSolverMultistepScheduler: Stable Audio Open):
    x = x_0 + sigma eps; the model sees c_in x, c_in = 1 / sqrt(sigma^2 + sigma_data^2), at timestep
    t = atan(sigma) * 2 / pi, and its output F is read as x_0 = c_skip x + c_out F (c_skip = sigma_data^2 /
    (sigma^2 + sigma_data^2), c_out = -+ sigma sigma_data / sqrt(sigma^2 + sigma_data^2) for v / epsilon), so the
    target is the F that gives x_0 back: (x_0 - c_skip x) / c_out, which at sigma_data = 1 is the velocity
    cos(t pi/2) eps - sin(t pi/2) x_0 of the cosine schedule the model was trained on (stable-audio-tools, "v"
    objective). t is drawn uniformly, as that recipe draws it, over the scheduler's own range
    [t(sigma_min), t(sigma_max)] (0.19..0.9987 for Stable Audio Open's 0.3..500): the noise levels the sampler
    calls the model at, no lower ones that it never visits.
Anything else (variance-exploding, EDM schedulers with other preconditioning) is refused with a one-line error.
Noise and timesteps are drawn on the CPU from the caller's generator, so a seed gives the same batch on
every device, then take the device and dtype of the clean latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler

from diffprune.errors import DiffpruneError

DDPM_PREDICTIONS = ("epsilon", "v_prediction", "sample")
FLOW_PREDICTION = "flow_prediction"
# EDM-preconditioned schedulers whose timestep is atan(sigma) * 2 / pi: the v-diffusion (cosine) parametrisation.
V_DIFFUSION_SCHEDULERS = ("CosineDPMSolverMultistepScheduler",)
V_DIFFUSION_PREDICTIONS = ("v_prediction", "epsilon")  # the two its precondition_outputs defines
# Scheduler config keys that describe the training betas; everything else is inference-only.
BETA_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "rescale_betas_zero_snr",
)


@dataclass
class NoisedBatch:
    noisy: torch.Tensor  # the model's input sample
    timesteps: torch.Tensor  # the model's timestep input, one per sample
    target: torch.Tensor  # what the model's output regresses to


class TrainingNoise:
    """The forward (noising) process a model was trained with; see the module docstring."""

    def __init__(self, scheduler):
        """`scheduler`: the pipeline's scheduler (any class), or its config as a mapping."""
        config = dict(getattr(scheduler, "config", scheduler))
        config.setdefault("_class_name", type(scheduler).__name__ if hasattr(scheduler, "config") else "scheduler")
        self.scheduler_name = config["_class_name"]
        self.num_train_timesteps = int(config.get("num_train_timesteps") or 1000)
        self.is_flow_matching = _is_flow_matching(config)
        self.is_v_diffusion = self.scheduler_name in V_DIFFUSION_SCHEDULERS
        if self.is_flow_matching:
            self.prediction_type = FLOW_PREDICTION
            self._sigmas = _flow_training_sigmas(config, self.num_train_timesteps)
            return
        if self.is_v_diffusion:
            self.prediction_type = config.get("prediction_type") or "v_prediction"
            if self.prediction_type not in V_DIFFUSION_PREDICTIONS:
                raise DiffpruneError(
                    f"prediction_type {self.prediction_type!r} of {self.scheduler_name} is not supported by "
                    f"diffprune's losses (supported: {', '.join(V_DIFFUSION_PREDICTIONS)}); use `criterion` ld-pruner"
                )
            self.sigma_data = float(config.get("sigma_data", 1.0))
            self.sigmas = _v_diffusion_training_sigmas(config, self.num_train_timesteps)
            return
        if "beta_schedule" not in config and config.get("trained_betas") is None:
            raise DiffpruneError(
                f"cannot tell how a model with a {self.scheduler_name} was trained (no betas in its config); "
                "diffprune's losses support DDPM-beta and flow-matching models: use `criterion` ld-pruner or magnitude"
            )
        self.prediction_type = config.get("prediction_type") or "epsilon"
        if self.prediction_type not in DDPM_PREDICTIONS:
            raise DiffpruneError(
                f"prediction_type {self.prediction_type!r} of {self.scheduler_name} is not supported by diffprune's "
                f"losses (supported: {', '.join(DDPM_PREDICTIONS + (FLOW_PREDICTION,))}); use `criterion` ld-pruner"
            )

        betas = {key: config[key] for key in BETA_KEYS if key in config}
        self._ddpm = DDPMScheduler(**betas, prediction_type=self.prediction_type)

    @classmethod
    def for_pipeline(cls, pipeline) -> TrainingNoise:
        return cls(pipeline.scheduler)

    def draw_timesteps(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training positions on the CPU: integer timesteps (DDPM) or indices into the training sigmas (flow,
        v-diffusion)."""
        return torch.randint(0, self.num_train_timesteps, (batch_size,), generator=generator)

    def noise(self, clean: torch.Tensor, noise: torch.Tensor, positions: torch.Tensor) -> NoisedBatch:
        """Noise `clean` with `noise` at `positions` (from draw_timesteps); all take clean's device and dtype."""
        noise = noise.to(device=clean.device, dtype=clean.dtype)
        positions = positions.to(clean.device)
        if self.is_flow_matching:
            sigmas = self._sigmas.to(device=clean.device)[positions]
            sigma = sigmas.to(clean.dtype).view(-1, *([1] * (clean.ndim - 1)))
            noisy = (1 - sigma) * clean + sigma * noise
            return NoisedBatch(noisy, (sigmas * self.num_train_timesteps).to(clean.dtype), noise - clean)
        if self.is_v_diffusion:
            return self._noise_preconditioned(clean, noise, positions)
        noisy = self._ddpm.add_noise(clean, noise, positions)
        if self.prediction_type == "epsilon":
            target = noise
        elif self.prediction_type == "sample":
            target = clean
        else:
            target = self._ddpm.get_velocity(clean, noise, positions)
        return NoisedBatch(noisy, positions, target)

    def _noise_preconditioned(self, clean, noise, positions) -> NoisedBatch:
        """The module docstring's v-diffusion case. Coefficients in float64, and input and target as sums of a
        clean and a noise term (never x = x_0 + 500 eps first), so bf16 latents keep their signal."""
        sigma = self.sigmas[positions.cpu()]
        data = self.sigma_data
        scale = (sigma**2 + data**2).sqrt()
        c_in, c_skip = 1 / scale, data**2 / scale**2
        c_out = (-1 if self.prediction_type == "v_prediction" else 1) * sigma * data / scale
        # x_0 = c_skip (x_0 + sigma eps) + c_out F  =>  F = (1 - c_skip) / c_out x_0 - c_skip sigma / c_out eps
        coefficients = {
            "input_clean": c_in,
            "input_noise": c_in * sigma,
            "target_clean": (1 - c_skip) / c_out,
            "target_noise": -c_skip * sigma / c_out,
        }
        shape = (-1, *([1] * (clean.ndim - 1)))
        c = {k: v.to(device=clean.device, dtype=clean.dtype).view(shape) for k, v in coefficients.items()}
        noisy = c["input_clean"] * clean + c["input_noise"] * noise
        target = c["target_clean"] * clean + c["target_noise"] * noise
        timesteps = (sigma.atan() * 2 / math.pi).float().to(clean.device)  # the scheduler's precondition_noise
        return NoisedBatch(noisy, timesteps, target)

    def draw(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> NoisedBatch:
        """Fresh noise and timesteps for `clean` (noise first, then timesteps, from one CPU generator)."""
        noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32)
        positions = self.draw_timesteps(clean.shape[0], generator)
        return self.noise(clean, noise, positions)


def _is_flow_matching(config: dict) -> bool:
    name = str(config.get("_class_name", ""))
    return (
        name.startswith("FlowMatch")
        or bool(config.get("use_flow_sigmas"))
        or (config.get("prediction_type") == FLOW_PREDICTION)
    )


def _v_diffusion_training_sigmas(config: dict, num_train_timesteps: int) -> torch.Tensor:
    """sigma_i, float64, for t_i evenly spaced over [t(sigma_min), t(sigma_max)], t(sigma) = atan(sigma) * 2 / pi."""
    low, high = (math.atan(float(config[key])) * 2 / math.pi for key in ("sigma_min", "sigma_max"))
    t = torch.linspace(low, high, num_train_timesteps, dtype=torch.float64)
    return torch.tan(t * math.pi / 2)


def _flow_training_sigmas(config: dict, num_train_timesteps: int) -> torch.Tensor:
    """sigma_i for i = 0..T-1, increasing, with the scheduler's static shift applied (SD3: 3.0, Sana: flow_shift)."""
    shift = float(config.get("shift") or config.get("flow_shift") or 1.0)
    if config.get("use_dynamic_shifting"):  # FLUX: the shift depends on resolution at inference; train unshifted
        shift = 1.0
    sigmas = torch.arange(1, num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
    return (shift * sigmas / (1 + (shift - 1) * sigmas)).float()
