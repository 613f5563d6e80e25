"""Output-loss criterion: the exact change of the objective (objectives.py) when a unit is removed alone.

  * objective "guided" (the default): the mean over (sample, step) pairs of the pipeline's own trajectory of the
    guided error e with the unit's gate at 0 (and units removed in earlier rounds at 0), against the original.
  * objective "denoising-loss": the mean squared change of the one-step prediction on calibration inputs noised
    at random training timesteps, against the model with the earlier rounds' units removed.
Several candidates are scored in one batch through gate variants.
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
from diffprune.structure.gates import gated, variant_values


@register("output-loss")
@dataclass
class OutputLoss(Criterion):
    objective: str = AUTO
    direction_weight: float = 1.0
    num_batches: int = 2
    batch_size: int = 8

    def __post_init__(self):
        check_objective(self.objective)

    def score_pending(self, context, pending, removed, round_index) -> None:
        if resolved_objective(self, context) == DENOISING_LOSS:
            self._score_denoising(context, pending, removed, round_index)
            return
        denoiser, units = context.denoiser, context.units
        objective = guided_objective(context, self.direction_weight)
        already = {unit.name for unit in removed}
        batches = objective.pair_batches(self.num_batches, self.batch_size, seed=round_index)
        per_batch = context.variants_per_batch
        with torch.no_grad():
            for start in tqdm(range(0, len(pending), per_batch), desc="output-loss", disable=not context.show_progress):
                group = pending[start : start + per_batch]
                totals = torch.zeros(len(group), dtype=torch.float64)
                with gated(denoiser, units, variant_values(units, [already | {u.name} for u in group])):
                    for pairs in batches:
                        totals += objective.errors(denoiser, pairs, variants=len(group)).double().sum(0).cpu()
                count = sum(len(pairs) for pairs in batches)
                context.store.put_many(round_index, {u.name: float(totals[j]) / count for j, u in enumerate(group)})

    def _noisy_inputs(self, context, round_index):
        inputs = []
        for clean, indices, generator in context.loss_batches(self.num_batches, self.batch_size, seed=round_index):
            batch = context.adapter.training_noise.draw(clean, generator)
            inputs.append((batch.noisy, batch.timesteps, indices))
        return inputs

    def _score_denoising(self, context, pending, removed, round_index) -> None:
        denoiser, units, adapter = context.denoiser, context.units, context.adapter
        already = {unit.name for unit in removed}
        inputs = self._noisy_inputs(context, round_index)
        per_batch = context.variants_per_batch
        with torch.no_grad():
            with gated(denoiser, units, variant_values(units, [already])):
                references = [adapter.predict(denoiser, x, t, adapter.conditioning(i)) for x, t, i in inputs]
            for start in tqdm(range(0, len(pending), per_batch), desc="output-loss", disable=not context.show_progress):
                group = pending[start : start + per_batch]
                totals = torch.zeros(len(group))
                with gated(denoiser, units, variant_values(units, [already | {u.name} for u in group])):
                    for (x, t, indices), reference in zip(inputs, references, strict=True):
                        conditioning = {
                            k: v.repeat_interleave(len(group), 0) for k, v in adapter.conditioning(indices).items()
                        }
                        output = adapter.predict(
                            denoiser, x.repeat_interleave(len(group), 0), t.repeat_interleave(len(group)), conditioning
                        )
                        output = output.view(x.shape[0], len(group), *output.shape[1:])
                        totals += (output - reference[:, None]).float().square().flatten(2).mean(2).mean(0).cpu()
                context.store.put_many(
                    round_index, {u.name: float(totals[j]) / len(inputs) for j, u in enumerate(group)}
                )
