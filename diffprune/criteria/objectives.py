"""What the loss-based criteria (gradflow, taylor, output-loss) measure a masked or gated model by.

* "auto" (the default): "guided" for pipelines that take a prompt or a class label, "denoising-loss" for
  unconditional ones (DDPM, DDIM, LDM, audio diffusion). Measured on digits-ddpm (docs/results.md, "The on-path
  objective on an unconditional model"): the on-path error picked the same units as the denoising loss at most
  budgets but made taylor's 0.6 cut far worse, so where there is no prompt to keep, the training loss stays.
* "guided": what the user's sampler uses, compared with the original's, on the original's own
  sampling path. The inputs are the recorded trajectory (models/trajectory.py): the latents x_{i,k} the
  denoiser received at step k of calibration sample i, and the step's timestep. With c = prediction for the
  sample's prompt, u = prediction for the pipeline's negative prompt (DiT: its null class), s the pipeline's
  guidance scale, the guided prediction g = u + s (c - u) and the guidance direction d = c - u. The primed
  quantities are the gated model's, the plain ones the original's (computed once):

      e_{i,k} = mse(g' - g) / G_k + w mse(d' - d) / D_k,     G_k = mean_i mse(g), D_k = mean_i mse(d)

  (mse: mean over latent elements). Each part is relative to the original's own size at that step, so the
  prompt's small conditional signal counts as much as the whole prediction: guidance multiplies exactly it.
  A pipeline that samples without guidance (unconditional models, FLUX) has e = mse(p' - p) / P_k for its
  prediction p.
* "denoising-loss": the diffusion training loss at uniformly drawn training timesteps, on the original's
  own samples or the user's images (adapter.denoising_loss). Unguided and one-step: docs/results.md shows it
  misses what cross-attention carries on text-to-image models.
"""

from __future__ import annotations

import torch

from diffprune.errors import DiffpruneError

AUTO = "auto"
GUIDED = "guided"
DENOISING_LOSS = "denoising-loss"
OBJECTIVES = (AUTO, GUIDED, DENOISING_LOSS)


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise DiffpruneError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")


def resolved_objective(criterion, context) -> str:
    """The objective `criterion` measures by on this context's pipeline ("auto" resolved)."""
    if criterion.objective != AUTO:
        return criterion.objective
    return GUIDED if context.adapter.conditioned else DENOISING_LOSS


def guidance_scale(adapter) -> float:
    """The scale the calibration calls sample with: the settings' or the pipeline call's default."""
    scale = adapter.denoiser_family.guidance_scale(adapter.pipeline, adapter.settings.guidance_scale)
    return 1.0 if scale is None else scale


class GuidedObjective:
    """The "guided" objective on one context's recorded trajectory; the original's predictions are computed
    here, once, so build it while the denoiser is ungated (`guided_objective(context, w)` caches it)."""

    def __init__(self, context, direction_weight: float = 1.0):
        self.adapter = context.adapter
        self.direction_weight = float(direction_weight)
        trajectory = context.trajectory()
        self.latents, self.timesteps = trajectory.latents, trajectory.timesteps
        self.num_steps = trajectory.num_steps
        self.guided = trajectory.guided
        self.scale = guidance_scale(self.adapter)
        if self.guided and self.adapter.unconditional_conditioning([0]) is None:
            raise DiffpruneError(
                f"{type(self.adapter.pipeline).__name__} samples with guidance but diffprune cannot build its "
                "unconditional input; use objective=denoising-loss"
            )
        all_pairs = torch.arange(trajectory.num_samples * self.num_steps)
        per_call = max(1, self.adapter.settings.max_batch // (2 if self.guided else 1))
        guided, direction = [], []
        with torch.no_grad():
            for chunk in all_pairs.split(per_call):
                g, d = self.outputs(context.denoiser, chunk)
                guided.append(g.cpu())
                direction.append(d.cpu() if d is not None else None)
        self.teacher_guided = torch.cat(guided)
        self.teacher_direction = torch.cat(direction) if self.guided else None
        self.guided_size = self._step_means(self.teacher_guided)
        self.direction_size = self._step_means(self.teacher_direction) if self.guided else None

    def _step_means(self, predictions: torch.Tensor) -> torch.Tensor:
        """[num_steps]: the mean over samples of each prediction's mean square, at each step."""
        squares = predictions.double().square().flatten(1).mean(1).view(-1, self.num_steps)
        return squares.mean(0).clamp_min(1e-20)

    def pair_batches(self, num_batches: int, batch_size: int, seed: int = 0) -> list[torch.Tensor]:
        """Batches of (sample, step) pairs, as flat indices i * num_steps + k: each pass over the trajectory in a
        seeded random order, so every pair is used before any is repeated."""
        generator = torch.Generator().manual_seed(seed)
        total = self.latents.shape[0] * self.num_steps
        batch_size = min(batch_size, total)
        order = torch.empty(0, dtype=torch.long)
        batches = []
        for _ in range(num_batches):
            while len(order) < batch_size:
                order = torch.cat([order, torch.randperm(total, generator=generator)])
            batches.append(order[:batch_size])
            order = order[batch_size:]
        return batches

    def outputs(self, model, pairs: torch.Tensor, variants: int = 1):
        """(g, d) of `model` for these pairs ((p, None) without guidance), float32, rows pair-major: row
        j * variants + v is pair j under gate variant v. Conditional and unconditional halves go in one call."""
        adapter = self.adapter
        samples, steps = (pairs // self.num_steps).tolist(), pairs % self.num_steps
        dtype = next(model.parameters()).dtype
        noisy = self.latents.flatten(0, 1)[pairs].to(adapter.device, dtype).repeat_interleave(variants, 0)
        timesteps = self.timesteps[steps].to(adapter.device).repeat_interleave(variants, 0)
        conditioning = {k: v.repeat_interleave(variants, 0) for k, v in adapter.conditioning(samples).items()}
        if not self.guided:
            return adapter.predict(model, noisy, timesteps, conditioning).float(), None
        unconditional = adapter.unconditional_conditioning(samples)
        both = {
            key: torch.cat([conditioning[key], unconditional[key].repeat_interleave(variants, 0)])
            for key in conditioning
        }
        prediction = adapter.predict(model, torch.cat([noisy, noisy]), torch.cat([timesteps, timesteps]), both)
        conditional, unconditional_prediction = prediction.float().chunk(2)
        direction = conditional - unconditional_prediction
        return unconditional_prediction + self.scale * direction, direction

    def relative_outputs(self, model, pairs: torch.Tensor) -> torch.Tensor:
        """[pairs, features] whose squared distance to the original's is the pair's error e (the objective's
        square root, for Gauss-Newton estimates)."""
        g, d = self.outputs(model, pairs)
        steps = (pairs % self.num_steps).to(g.device)
        parts = [g.flatten(1) / (self.guided_size.to(g.device)[steps, None] * g[0].numel()).sqrt().float()]
        if d is not None:
            weight = self.direction_weight / (self.direction_size.to(g.device)[steps, None] * d[0].numel())
            parts.append(d.flatten(1) * weight.sqrt().float())
        return torch.cat(parts, dim=1)

    def errors(self, model, pairs: torch.Tensor, variants: int = 1) -> torch.Tensor:
        """[pairs, variants]: each pair's error e under each gate variant."""
        g, d = self.outputs(model, pairs, variants)
        device = g.device
        steps = (pairs % self.num_steps).repeat_interleave(variants)
        reference = self.teacher_guided[pairs].to(device).repeat_interleave(variants, 0)
        error = (g - reference).square().flatten(1).mean(1) / self.guided_size.to(device)[steps].float()
        if d is not None:
            reference = self.teacher_direction[pairs].to(device).repeat_interleave(variants, 0)
            direction_error = (d - reference).square().flatten(1).mean(1)
            error = error + self.direction_weight * direction_error / self.direction_size.to(device)[steps].float()
        return error.view(len(pairs), variants)

    def loss(self, model, pairs: torch.Tensor) -> torch.Tensor:
        """The objective's mean over these pairs (differentiable through the gates)."""
        return self.errors(model, pairs).mean()


def guided_objective(context, direction_weight: float = 1.0) -> GuidedObjective:
    """The context's guided objective, built once per direction weight (the original's predictions are cached)."""
    key = ("guided_objective", float(direction_weight))
    if key not in context.cache:
        context.cache[key] = GuidedObjective(context, direction_weight)
    return context.cache[key]
