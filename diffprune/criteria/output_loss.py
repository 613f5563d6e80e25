"""Output-loss baseline: the one-step change of the noise prediction when a unit is removed,
mean squared difference over calibration inputs noised at random timesteps. Batched through gate variants."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from diffprune.criteria.base import Criterion, register
from diffprune.structure.gates import gated, variant_values


@register("output-loss")
@dataclass
class OutputLoss(Criterion):
    num_batches: int = 2
    batch_size: int = 8

    def _noisy_inputs(self, context, round_index):
        inputs = []
        for clean, indices, generator in context.loss_batches(self.num_batches, self.batch_size, seed=round_index):
            batch = context.adapter.training_noise.draw(clean, generator)
            inputs.append((batch.noisy, batch.timesteps, indices))
        return inputs

    def score_pending(self, context, pending, removed, round_index) -> None:
        unet, units, adapter = context.denoiser, context.units, context.adapter
        already = {unit.name for unit in removed}
        inputs = self._noisy_inputs(context, round_index)
        per_batch = context.variants_per_batch
        with torch.no_grad():
            with gated(unet, units, variant_values(units, [already])):
                references = [adapter.predict(unet, x, t, adapter.conditioning(i)) for x, t, i in inputs]
            for start in tqdm(range(0, len(pending), per_batch), desc="output-loss", disable=not context.show_progress):
                group = pending[start : start + per_batch]
                totals = torch.zeros(len(group))
                with gated(unet, units, variant_values(units, [already | {u.name} for u in group])):
                    for (x, t, indices), reference in zip(inputs, references, strict=True):
                        conditioning = {
                            k: v.repeat_interleave(len(group), 0) for k, v in adapter.conditioning(indices).items()
                        }
                        output = adapter.predict(
                            unet, x.repeat_interleave(len(group), 0), t.repeat_interleave(len(group)), conditioning
                        )
                        output = output.view(x.shape[0], len(group), *output.shape[1:])
                        totals += (output - reference[:, None]).float().square().flatten(2).mean(2).mean(0).cpu()
                context.store.put_many(
                    round_index, {u.name: float(totals[j]) / len(inputs) for j, u in enumerate(group)}
                )
