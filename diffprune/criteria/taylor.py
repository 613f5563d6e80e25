"""First-order Taylor baseline (in the spirit of Diff-Pruning): |g * dL/dg| at g = 1, where L is the
denoising loss and g the unit's gate, accumulated over calibration batches at random timesteps."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..gates import gated, removal_values
from . import register
from .base import Criterion


@register("taylor")
class FirstOrderTaylor(Criterion):
    def __init__(self, num_batches: int = 8, batch_size: int = 8):
        self.num_batches = num_batches
        self.batch_size = batch_size

    def settings(self) -> dict:
        return {"num_batches": self.num_batches, "batch_size": self.batch_size}

    def score_pending(self, context, pending, removed, round_index) -> None:
        gates = torch.nn.Parameter(removal_values(context.units, {u.name for u in removed}))
        total = torch.zeros(len(context.units))
        batches = context.loss_batches(self.num_batches, self.batch_size, seed=round_index)
        with gated(context.unet, context.units, gates):
            for clean, indices, generator in tqdm(list(batches), desc="taylor", disable=not context.show_progress):
                loss = context.adapter.denoising_loss(context.unet, clean, indices, generator)
                (gradient,) = torch.autograd.grad(loss, gates)
                total += (gates.detach() * gradient).abs().cpu()
        index = {unit.name: i for i, unit in enumerate(context.units)}
        context.store.put_many(round_index, {u.name: float(total[index[u.name]]) / self.num_batches for u in pending})
