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

Two allocations of the calibration samples:
  * "adaptive" (the default): every candidate is scored on its first N / 8 samples (at least 3); only candidates
    whose side of the budget line is still uncertain get more, doubling until settled or at all N
    (sample_allocation.py: jackknife estimates and intervals of the N-sample score). Sample j is always the
    same seed and prompt, so a candidate that ends with all N samples has exactly the exhaustive score (up to
    float rounding of other batch sizes); one settled earlier keeps the jackknife estimate of its N-sample score.
    Needs the budget (prune() gives it); without one, every candidate gets every sample.
  * "exhaustive": every candidate on every sample, as the paper does.
The prune report records, per round, the denoiser evaluations spent next to the exhaustive count, and the time.
"""

from __future__ import annotations

import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.utils import gather_object
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from diffprune.criteria.base import SCORE_NEUTRAL, Criterion, register
from diffprune.criteria.sample_allocation import MINIMUM_SAMPLES, estimate_full_score, unsettled
from diffprune.distributed import process_state
from diffprune.errors import DiffpruneError
from diffprune.structure.gates import gated, variant_values
from diffprune.structure.selection import candidates_after
from diffprune.tensors import first_tensor

STATISTICS = ("distribution", "paired")
ALLOCATIONS = ("adaptive", "exhaustive")
INITIAL_SHARE = 8  # adaptive: every candidate starts with N / 8 samples (at least 3), then doubles while unsettled
SAMPLES_FOLDER = "ld-pruner-samples"  # in the work folder: latents of an adaptive round, for resume


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


DISTANCES = {"distribution": latent_statistics_distance, "paired": paired_latent_distance}


class DenoiserEvaluations:
    """Counts denoiser evaluations: one per sample in every batch the denoiser is called with (classifier-free
    guidance's two halves count twice), which is what a round costs."""

    def __init__(self):
        self.count = 0

    @contextmanager
    def counting(self, denoiser):
        def hook(module, args, kwargs):
            tensor = first_tensor(args, kwargs)
            self.count += tensor.shape[0] if tensor is not None and tensor.ndim else 1

        handle = denoiser.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()


@register("ld-pruner")
@dataclass
class LDPruner(Criterion):
    """statistic: "distribution" (the paper's) or "paired"; allocation: "adaptive" (samples go to candidates
    near the budget line) or "exhaustive" (every candidate on every sample); variants_per_batch: candidates
    generated in one batch (default: prune()'s variants_per_batch)."""

    statistic: str = "distribution"
    allocation: str = "adaptive"
    variants_per_batch: int | None = field(default=None, metadata=SCORE_NEUTRAL)

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise DiffpruneError(
                f"unknown LD-Pruner statistic {self.statistic!r}; choose one of {', '.join(STATISTICS)}"
            )
        if self.allocation not in ALLOCATIONS:
            raise DiffpruneError(
                f"unknown LD-Pruner allocation {self.allocation!r}; choose one of {', '.join(ALLOCATIONS)}"
            )

    @property
    def uses_budget(self) -> bool:
        """Adaptive scores depend on the budget line (which candidates got more samples)."""
        return self.allocation == "adaptive"

    def _adapts(self, context) -> bool:
        return self.allocation == "adaptive" and context.budget is not None and bool(context.total_costs)

    def _score_distributed(self, context, pending, removed, round_index) -> None:
        if self._adapts(context):  # every process runs the same decisions; each generates its own candidates
            self._score_adaptively(context, pending, removed, round_index)
        else:
            super()._score_distributed(context, pending, removed, round_index)

    def score_pending(self, context, pending, removed, round_index) -> None:
        if self._adapts(context):
            self._score_adaptively(context, pending, removed, round_index)
        else:
            self._score_exhaustively(context, pending, removed, round_index)

    # -- exhaustive -------------------------------------------------------------------------------
    def _score_exhaustively(self, context, pending, removed, round_index) -> None:
        reference = context.reference_latents()
        distance = DISTANCES[self.statistic]
        already = {unit.name for unit in removed}
        per_batch = self.variants_per_batch or context.variants_per_batch
        groups = [pending[i : i + per_batch] for i in range(0, len(pending), per_batch)]
        progress = tqdm(
            total=len(pending), desc=f"ld-pruner round {round_index + 1}", disable=not context.show_progress
        )
        evaluations, started = DenoiserEvaluations(), time.perf_counter()
        with evaluations.counting(context.denoiser):
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
        _record(context, round_index, "exhaustive", evaluations.count, evaluations.count, time.perf_counter() - started)

    # -- adaptive ---------------------------------------------------------------------------------
    def _score_adaptively(self, context, pending, removed, round_index) -> None:
        """Stages: generate what each candidate of this process lacks, share (samples, score, interval) with the
        other processes, find the candidates whose selection is unsettled, double their samples; until none is."""
        state = process_state()
        reference = context.reference_latents()
        total = reference.shape[0]
        distance = DISTANCES[self.statistic]
        # Everything that competes for the budget this round: the pending candidates and those already scored.
        stored = {
            unit.name: context.store.get(round_index, unit.name)
            for unit in candidates_after(context.units, removed)
            if context.store.get(round_index, unit.name) is not None
        }
        competing = pending + [unit for unit in context.units if unit.name in stored]
        mine = pending[state.process_index :: state.num_processes]
        samples_folder = _samples_folder(context, round_index)
        if samples_folder is not None and state.is_main_process:
            context.store.put_many(round_index, {})  # the store records the settings before any latents file
        # Samples an interrupted run left: the stages replay on them, so resuming ends where the first run would.
        saved = _load_samples(samples_folder, mine)
        latents, resumed = {}, 0
        wanted = dict.fromkeys(
            (unit.name for unit in pending), min(total, max(MINIMUM_SAMPLES, total // INITIAL_SHARE))
        )
        point, low, high, observed = dict(stored), dict(stored), dict(stored), {}
        evaluations, generated, started, stages = DenoiserEvaluations(), 0, time.perf_counter(), 0
        progress = tqdm(
            total=len(pending) * total,
            desc=f"ld-pruner round {round_index + 1} (samples, adaptive)",
            disable=not (context.show_progress and state.is_main_process),
        )
        while True:
            stages += 1
            for unit in mine:  # replay what an interrupted run already drew
                have = latents[unit.name].shape[0] if unit.name in latents else 0
                if unit.name in saved and saved[unit.name].shape[0] > have:
                    latents[unit.name] = saved[unit.name][: wanted[unit.name]]
                    resumed += latents[unit.name].shape[0] - have
            with evaluations.counting(context.denoiser):
                generated += self._extend(context, mine, latents, wanted, removed, samples_folder, state)
            local = {}
            for unit in mine:
                have = latents[unit.name]
                local[unit.name] = (have.shape[0], *estimate_full_score(distance, reference, have, total))
            shared = gather_object([local]) if state.num_processes > 1 else [local]
            for part in shared:
                for name, (count, score, lower, upper) in part.items():
                    observed[name], point[name], low[name], high[name] = count, score, lower, upper
            progress.n = sum(observed.values())
            progress.refresh()
            try:
                doubtful = unsettled(
                    competing, point, low, high, lambda scores: context.select(scores, removed, round_index)
                )
            except DiffpruneError:  # the scored units alone cannot meet the budget: no line to allocate by
                doubtful = [unit.name for unit in pending]
            grow = [name for name in doubtful if name in wanted and observed[name] < total]
            if not grow:
                break
            for name in grow:
                wanted[name] = min(total, 2 * observed[name])
        progress.close()
        scores = {unit.name: point[unit.name] for unit in pending}
        if state.is_main_process:
            context.store.put_many(round_index, scores)
        else:
            context.store.remember(round_index, scores)
        counts = (
            gather_object([(evaluations.count, generated)])
            if state.num_processes > 1
            else [(evaluations.count, generated)]
        )
        spent = sum(count for count, _ in counts)
        pairs = sum(pair for _, pair in counts)
        exhaustive = round(spent / pairs * len(pending) * total) if pairs else None
        _record(
            context,
            round_index,
            "adaptive",
            spent,
            exhaustive,
            time.perf_counter() - started,
            stages=stages,
            samples_resumed=resumed,
            samples_per_candidate={unit.name: observed[unit.name] for unit in pending},
        )

    def _extend(self, context, mine, latents, wanted, removed, samples_folder, state) -> int:
        """Generate, for this process's candidates, the samples between what they have and what they want;
        candidates that need the same sample range share batches. Returns how many (sample, candidate) pairs."""
        ranges: dict[tuple[int, int], list] = {}
        for unit in mine:
            have = latents[unit.name].shape[0] if unit.name in latents else 0
            if wanted[unit.name] > have:
                ranges.setdefault((have, wanted[unit.name]), []).append(unit)
        already = {unit.name for unit in removed}
        per_batch = self.variants_per_batch or context.variants_per_batch
        pairs = 0
        for (start, stop), units in sorted(ranges.items(), key=lambda item: item[0]):
            # Few samples per candidate: more candidates share a batch, so batches stay as large as exhaustive ones.
            group_size = max(per_batch, context.adapter.settings.max_batch // (stop - start))
            for first in range(0, len(units), group_size):
                group = units[first : first + group_size]
                variants = [already | {unit.name} for unit in group]
                with gated(context.denoiser, context.units, variant_values(context.units, variants)):
                    new = context.adapter.final_latents(len(group), samples=range(start, stop))
                pieces = {unit.name: new[:, index].contiguous() for index, unit in enumerate(group)}
                _save_samples(samples_folder, pieces, start, stop, state.process_index)
                for name, piece in pieces.items():
                    latents[name] = torch.cat([latents[name], piece]) if name in latents else piece
                pairs += (stop - start) * len(group)
        return pairs


def _record(context, round_index, allocation, spent, exhaustive, seconds, **details) -> None:
    context.report.setdefault("ld_pruner_rounds", {})[str(round_index)] = {
        "allocation": allocation,
        "denoiser_evaluations": spent,
        "exhaustive_denoiser_evaluations": exhaustive,
        "fraction_of_exhaustive": spent / exhaustive if exhaustive else None,
        "seconds": seconds,
        **details,
    }


def _samples_folder(context, round_index: int) -> Path | None:
    folder = context.work_folder
    return folder / SAMPLES_FOLDER / f"round-{round_index}" if folder is not None else None


def _save_samples(folder: Path | None, pieces: dict, start: int, stop: int, process_index: int) -> None:
    """One safetensors file per batch ({candidate: latents of samples start..stop-1}), written atomically."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    tag = zlib.crc32("|".join(sorted(pieces)).encode())
    target = folder / f"{start}-{stop}-{tag:08x}.safetensors"
    temporary = folder / f".{target.name}.{process_index}.tmp"
    save_file(pieces, temporary, metadata={"start": str(start), "stop": str(stop)})
    temporary.replace(target)


def _load_samples(folder: Path | None, units) -> dict[str, torch.Tensor]:
    """{candidate: latents of its samples 0..n-1} from an interrupted adaptive round (the contiguous prefix)."""
    if folder is None or not folder.exists():
        return {}
    names = {unit.name for unit in units}
    pieces: dict[str, dict[int, tuple[int, torch.Tensor]]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, "pt") as file:
            start, stop = int(file.metadata()["start"]), int(file.metadata()["stop"])
            for name in set(file.keys()) & names:
                pieces.setdefault(name, {})[start] = (stop, file.get_tensor(name))
    latents = {}
    for name, by_start in pieces.items():
        parts, position = [], 0
        while position in by_start:
            position, tensor = by_start[position]
            parts.append(tensor)
        if parts:
            latents[name] = torch.cat(parts)
    return latents
