"""Taylor criterion: how much the objective (objectives.py) changes, to first order in the unit's gate.

* objective "denoising-loss" (Diff-Pruning's spirit): |g dL/dg| at g = 1, where L is the denoising loss and g
  the unit's gate, averaged over calibration batches at random timesteps.
* objective "guided" (the default): the guided objective is teacher-relative, so it is zero with zero gradient
  at the original and its first-order Taylor term says nothing. Its Gauss-Newton diagonal does: with y the
  relative outputs whose squared distance to the original's is the error e (objectives.py), removing unit u
  changes y by -J_u to first order, and e by ||J_u||^2 = E_r[(r . J_u)^2] for random signs r. Each pair of
  the trajectory gets its own gate (a per-sample gate variant), so one backward pass of r . y gives one
  independent estimate per pair; the score is the mean over pairs of (g_u r . J_u)^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from diffprune.criteria.base import Criterion, register
from diffprune.criteria.objectives import (
    AUTO,
    DENOISING_LOSS,
    check_objective,
    guided_objective,
    resolved_objective,
)
from diffprune.structure.gates import gated, removal_values


@register("taylor")
@dataclass
class Taylor(Criterion):
    objective: str = AUTO
    direction_weight: float = 1.0
    num_batches: int = 8
    batch_size: int = 8

    def __post_init__(self):
        check_objective(self.objective)

    def score_pending(self, context, pending, removed, round_index) -> None:
        if resolved_objective(self, context) == DENOISING_LOSS:
            total = self._loss_taylor(context, removed, round_index)
        else:
            total = self._gauss_newton(context, removed, round_index)
        index = {unit.name: i for i, unit in enumerate(context.units)}
        context.store.put_many(round_index, {u.name: float(total[index[u.name]]) for u in pending})

    def _loss_taylor(self, context, removed, round_index) -> torch.Tensor:
        gates = torch.nn.Parameter(removal_values(context.units, {u.name for u in removed}))
        total = torch.zeros(len(context.units))
        batches = context.loss_batches(self.num_batches, self.batch_size, seed=round_index)
        with gated(context.denoiser, context.units, gates):
            for clean, indices, generator in tqdm(list(batches), desc="taylor", disable=not context.show_progress):
                loss = context.adapter.denoising_loss(context.denoiser, clean, indices, generator)
                (gradient,) = torch.autograd.grad(loss, gates)
                total += (gates.detach() * gradient).abs().cpu()
        return total / self.num_batches

    def _gauss_newton(self, context, removed, round_index) -> torch.Tensor:
        objective = guided_objective(context, self.direction_weight)
        values = removal_values(context.units, {u.name for u in removed})
        total, count = torch.zeros(len(context.units), dtype=torch.float64), 0
        generator = torch.Generator().manual_seed(round_index)
        batches = objective.pair_batches(self.num_batches, self.batch_size, seed=round_index)
        for pairs in tqdm(batches, desc="taylor", disable=not context.show_progress):
            gates = torch.nn.Parameter(values[:, None].repeat(1, len(pairs)))  # one gate per pair
            with gated(context.denoiser, context.units, gates):
                outputs = objective.relative_outputs(context.denoiser, pairs)
            signs = torch.randint(0, 2, outputs.shape, generator=generator).to(outputs) * 2 - 1
            (gradient,) = torch.autograd.grad((outputs * signs).sum(), gates)
            total += (gates.detach() * gradient).double().square().sum(1).cpu()
            count += len(pairs)
        return total / max(count, 1)
