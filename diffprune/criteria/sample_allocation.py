"""Adaptive allocation of calibration samples: spend them where the selection is still undecided.

A latent-impact score over N calibration samples is a statistic of N (reference, modified) latent pairs, and
sample j is always the same seed and prompt. After the first n < N samples of a candidate, the jackknife says
where its score on all N would lie:

  * pseudo-values p_i = n S_n - (n - 1) S_(n, without i) are the per-sample contributions (for the paired
    statistic, a mean over samples, they are exactly the per-sample distances; for the distributional one,
    ||mean shift|| + ||std shift||, which is no mean, they linearise it);
  * their mean estimates the score of infinitely many samples; the score of N is that plus the small-sample
    bias scaled to N: estimate = mean(p) + (S_n - mean(p)) n / N, which is S_N itself at n = N;
  * the interval is estimate +- t_(n-1) sd(p) / sqrt(n) sqrt(1 - n / N): the unseen N - n samples and the
    uncertainty of the mean they are drawn around (finite-population correction: zero width at n = N).

Measured on the bundled models' exhaustive latents (16 samples): 95% intervals held the 16-sample score for 35
of 36 digits-t2i units and 26 of 26 digits-ddpm units at n = 8, all at n = 3 and 4, where the raw n-sample score
of the distributional statistic overestimated it by up to 4x (the noise of few samples adds to the norms).

A candidate is settled when no value in its interval changes whether the greedy selection (structure/selection.py:
budget, ranking, nested units, costs) removes it, the other candidates at their estimates. The unsettled ones get
more samples (their n doubles); settled ones keep their estimate. Two candidates whose intervals overlap each
other but neither's estimate may still trade places: we first moved every other candidate to the opposite end
of its interval as well, which never traded places on digits-t2i (32 samples x 20 steps, 0.7 of the MACs) but
spent 46% of the exhaustive denoiser calls there, against 31% with the rule above (one near-line unit swapped:
30.7% of the MACs removed instead of 30.3%; offline replay on that run's exhaustive latents); eval/benchmark_adaptive_scoring.py measures both the calls and the selection.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from scipy.stats import t as student

TAIL = 0.025  # each side: a 95% interval
MINIMUM_SAMPLES = 3  # the jackknife of a standard deviation needs two samples left after leaving one out


def estimate_full_score(
    distance: Callable, reference: torch.Tensor, modified: torch.Tensor, total: int
) -> tuple[float, float, float]:
    """(estimate, low, high) of distance(reference over all `total` samples, modified over all) from the first
    n = len(modified) pairs; `reference` holds at least those n. At n = total it is the exhaustive score."""
    observed = modified.shape[0]
    point = distance(reference[:observed], modified)
    if observed >= total:
        return point, point, point
    if observed < MINIMUM_SAMPLES:
        return point, 0.0, math.inf
    keep = torch.ones(observed, dtype=torch.bool)
    without = []
    for index in range(observed):
        keep[index] = False
        without.append(distance(reference[:observed][keep], modified[keep]))
        keep[index] = True
    pseudo = observed * point - (observed - 1) * torch.tensor(without, dtype=torch.float64)
    limit = float(pseudo.mean())
    estimate = limit + (point - limit) * observed / total
    spread = float(pseudo.std()) / math.sqrt(observed) * math.sqrt(1 - observed / total)
    half = float(student.ppf(1 - TAIL, observed - 1)) * spread
    return max(estimate, 0.0), max(estimate - half, 0.0), estimate + half


def effectively_removed(chosen, candidates) -> set[str]:
    """Names of candidates that a selection removes: chosen, or inside a chosen unit."""
    return {unit.name for unit in candidates if any(c.name == unit.name or c.contains(unit) for c in chosen)}


def unsettled(candidates, point: dict, low: dict, high: dict, select: Callable[[dict], list]) -> list[str]:
    """Candidates whose removal by `select` (scores -> chosen units) could change within their own interval: each
    is moved to the end of its interval that argues against the point selection's verdict (the high end if it is
    removed, the low end if it is kept), the others staying at their estimates, and the verdict checked again."""
    removed = effectively_removed(select(point), candidates)
    doubtful = []
    for unit in candidates:
        if low[unit.name] == high[unit.name]:
            continue  # exhaustive already: more samples cannot change it
        was_removed = unit.name in removed
        trial = dict(point)
        trial[unit.name] = high[unit.name] if was_removed else low[unit.name]
        if (unit.name in effectively_removed(select(trial), candidates)) != was_removed:
            doubtful.append(unit.name)
    return doubtful
