"""First-order Taylor baseline (in the spirit of Diff-Pruning): |g * dL/dg| at g = 1, where L is the
denoising loss and g the unit's gate, accumulated over calibration batches at random timesteps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from diffprune.criteria.base import Criterion, register
from diffprune.structure.gates import gated, removal_values


@register("taylor")
@dataclass
class Taylor(Criterion):
    num_batches: int = 8
    batch_size: int = 8

    def score_pending(self, context, pending, removed, round_index) -> None:
        gates = torch.nn.Parameter(removal_values(context.units, {u.name for u in removed}))
        total = torch.zeros(len(context.units))
        batches = context.loss_batches(self.num_batches, self.batch_size, seed=round_index)
        with gated(context.denoiser, context.units, gates):
            for clean, indices, generator in tqdm(list(batches), desc="taylor", disable=not context.show_progress):
                loss = context.adapter.denoising_loss(context.denoiser, clean, indices, generator)
                (gradient,) = torch.autograd.grad(loss, gates)
                total += (gates.detach() * gradient).abs().cpu()
        index = {unit.name: i for i, unit in enumerate(context.units)}
        context.store.put_many(round_index, {u.name: float(total[index[u.name]]) / self.num_batches for u in pending})
