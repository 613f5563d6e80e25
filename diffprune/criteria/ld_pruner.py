"""LD-Pruner latent impact (Castells et al., 2024).

Remove one unit, generate the calibration set from the same seeds and inputs, and measure how far the
final latents move. Two statistics:
  * "distribution" (the paper's, the default): score(u) = ||mean_orig - mean_u||_2 + ||std_orig - std_u||_2,
    with mean and std per latent element across the N calibration samples;
  * "paired": score(u) = mean_i ||z_orig,i - z_u,i||_2, the distance between the two latents drawn from the
    same seed and prompt, averaged over samples. It sees changes that leave the distribution in place
    (a unit whose removal swaps which digit a prompt gets moves every sample but hardly the mean and std).
docs/results.md compares the two. Several candidates are scored in one batch, each a variant with its own
per-sample gates (see gates.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from diffprune.criteria.base import SCORE_NEUTRAL, Criterion, register
from diffprune.errors import DiffpruneError
from diffprune.structure.gates import gated, variant_values

STATISTICS = ("distribution", "paired")


def latent_statistics_distance(reference: torch.Tensor, modified: torch.Tensor) -> float:
    """||mean_ref - mean_mod||_2 + ||std_ref - std_mod||_2 over samples (dim 0), per latent element."""
    reference, modified = reference.double(), modified.double()
    mean_shift = torch.linalg.vector_norm(reference.mean(0) - modified.mean(0))
    std_shift = torch.linalg.vector_norm(reference.std(0) - modified.std(0))
    return float(mean_shift + std_shift)


def paired_latent_distance(reference: torch.Tensor, modified: torch.Tensor) -> float:
    """mean over samples (dim 0) of the L2 distance between latents drawn from the same seed and prompt."""
    difference = (reference.double() - modified.double()).flatten(1)
    return float(torch.linalg.vector_norm(difference, dim=1).mean())


@register("ld-pruner")
@dataclass
class LDPruner(Criterion):
    """statistic: "distribution" (the paper's) or "paired"; variants_per_batch: candidates generated in one
    batch (default: prune()'s variants_per_batch)."""

    statistic: str = "distribution"
    variants_per_batch: int | None = field(default=None, metadata=SCORE_NEUTRAL)

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise DiffpruneError(
                f"unknown LD-Pruner statistic {self.statistic!r}; choose one of {', '.join(STATISTICS)}"
            )

    def score_pending(self, context, pending, removed, round_index) -> None:
        reference = context.reference_latents()
        distance = paired_latent_distance if self.statistic == "paired" else latent_statistics_distance
        already = {unit.name for unit in removed}
        per_batch = self.variants_per_batch or context.variants_per_batch
        groups = [pending[i : i + per_batch] for i in range(0, len(pending), per_batch)]
        progress = tqdm(
            total=len(pending), desc=f"ld-pruner round {round_index + 1}", disable=not context.show_progress
        )
        for group in groups:
            variants = [already | {unit.name} for unit in group]
            with gated(context.denoiser, context.units, variant_values(context.units, variants)):
                latents = context.adapter.final_latents(len(group))
            context.store.put_many(
                round_index,
                {unit.name: distance(reference, latents[:, index]) for index, unit in enumerate(group)},
            )
            progress.update(len(group))
        progress.close()
