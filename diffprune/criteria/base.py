"""The interface every criterion implements, the context it scores in, and the registry of named criteria.

A criterion is a dataclass subclass of `Criterion`: its fields are its typed options (checked in
`__post_init__`), and `settings()` (what resume and the report record) is every field that changes scores.
A field that does not (a batching choice) says so with `field(..., metadata=SCORE_NEUTRAL)`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch

from diffprune.criteria.score_store import ScoreStore
from diffprune.distributed import process_state
from diffprune.errors import DiffpruneError
from diffprune.models.adapters import TaskAdapter
from diffprune.models.trajectory import Trajectory, recording_trajectory
from diffprune.structure.selection import Budget, select_units
from diffprune.structure.units import Unit


class ScoreResult(dict):
    """What a criterion's `score` returns for one round: {unit name: score} (a dict, so code that reads scores,
    or writes them as JSON, reads it as before), and `trained_denoiser`: the denoiser the criterion trained
    jointly while scoring, if it trained one (gradflow with train_weights), whose weights the cut then inherits."""

    def __init__(self, scores: Mapping[str, float] = (), trained_denoiser: torch.nn.Module | None = None):
        super().__init__(scores)
        self.trained_denoiser = trained_denoiser

    @classmethod
    def of(cls, returned) -> ScoreResult:
        """A criterion's return value as a ScoreResult: a user's criterion may return a plain {unit: score} dict."""
        if isinstance(returned, ScoreResult):
            return returned
        if not isinstance(returned, Mapping):
            raise DiffpruneError(
                f"a criterion's score() must return {{unit name: score}} or a ScoreResult; got {type(returned).__name__}"
            )
        return cls(returned)


@dataclass
class ScoringContext:
    """Everything a criterion may use: the adapter (calibration data, losses), every unit of the denoiser,
    the score store (resume), and the original's final latents, computed once."""

    adapter: TaskAdapter
    units: list[Unit]
    store: ScoreStore
    show_progress: bool = True
    variants_per_batch: int = 8
    budget: Budget | None = None  # criteria that prune softly (gradient flow) aim at it
    total_costs: dict = field(default_factory=dict)  # {"macs": ..., "params": ...} of the original
    ranking: str = "score"  # selection.RANKINGS: how the scores are turned into a selection
    rounds: int = 1  # progressive pruning: round r selects (r + 1) / rounds of the budget
    cache: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)  # what scoring cost (denoiser calls, time); in the prune report

    def select(self, scores: dict[str, float], removed: list[Unit], round_index: int) -> list[Unit]:
        """The units this round's selection removes given `scores` (besides `removed`): what prune() does with
        the scores, so criteria that allocate work by the budget line (LD-Pruner's adaptive samples) see it."""
        return select_units(
            self.units,
            scores,
            self.budget,
            self.total_costs[self.budget.cost],
            removed,
            target_fraction_removed=(round_index + 1) / self.rounds,
            ranking=self.ranking,
        )

    @property
    def denoiser(self):
        """The UNet or diffusion transformer being scored."""
        return self.adapter.denoiser

    def reference_latents(self) -> torch.Tensor:
        """[num_samples, ...] final latents of the unmodified model."""
        if "reference_latents" not in self.cache:
            self.cache["reference_latents"] = self.adapter.final_latents(1, "original latents")[:, 0]
        return self.cache["reference_latents"]

    def trajectory(self) -> Trajectory:
        """The original's own sampling path (what its denoiser received at every step of every calibration
        sample), recorded while it draws its final latents: one calibration run gives both."""
        if "trajectory" not in self.cache:
            with recording_trajectory(self.adapter.pipeline) as recorder:
                latents = self.adapter.final_latents(1, "original latents")[:, 0]
            self.cache.setdefault("reference_latents", latents)
            self.cache["trajectory"] = recorder.trajectory()
        return self.cache["trajectory"]

    def training_latents(self) -> torch.Tensor:
        """Clean data for loss-based criteria: the user's images if given, else the original's own samples."""
        if "training_latents" not in self.cache:
            user = self.adapter.user_latents()
            self.cache["training_latents"] = user.float().cpu() if user is not None else self.reference_latents()
        return self.cache["training_latents"]

    def loss_batches(self, num_batches: int, batch_size: int = 8, seed: int = 0):
        """Training batches: clean latents (training_latents) with the matching conditioning.
        Yields (clean latents, sample indices, generator for noise/timesteps)."""
        clean = self.training_latents()
        generator = torch.Generator().manual_seed(seed)
        count = clean.shape[0]
        for batch in range(num_batches):
            indices = [(batch * batch_size + offset) % count for offset in range(min(batch_size, count))]
            yield clean[indices].to(self.adapter.device, next(self.denoiser.parameters()).dtype), indices, generator

    @property
    def work_folder(self):
        return self.store.path.parent if self.store.path else None


class Criterion:
    """Maps candidate units to scores; lower means safer to remove.

    `removed` are units already removed in earlier rounds of progressive pruning: a criterion must score
    each candidate on the model with those units removed (gates at 0) as well.

    Under `accelerate launch`, criteria that score units independently (`splits_across_processes`) give each
    process its share of the pending units and gather the scores on every process, so all processes select
    the same units; only the main process writes the store.
    """

    name: ClassVar[str] = ""  # the registry key; a class registered with @register gets it
    splits_across_processes: ClassVar[bool] = True
    uses_budget: ClassVar[bool] = False  # scores depend on the budget (gradient flow aims its masks at it)

    def score(
        self, context: ScoringContext, candidates: list[Unit], removed: list[Unit], round_index: int
    ) -> ScoreResult:
        pending = [unit for unit in candidates if context.store.get(round_index, unit.name) is None]
        trained = self._score_distributed(context, pending, removed, round_index) if pending else None
        scores = {unit.name: context.store.get(round_index, unit.name) for unit in candidates}
        return ScoreResult(scores, trained_denoiser=trained)

    def _score_distributed(self, context, pending, removed, round_index) -> torch.nn.Module | None:
        # deferred: accelerate loads only when scoring runs on several processes
        from accelerate.utils import gather_object

        state = process_state()
        if state.num_processes == 1 or not self.splits_across_processes:
            if not state.is_main_process:  # every process computes; only the main one writes files
                context = replace(context, store=context.store.in_memory_copy())
            return self.score_pending(context, pending, removed, round_index)
        share = pending[state.process_index :: state.num_processes]
        local = replace(context, store=context.store.in_memory_copy())
        if share:
            self.score_pending(local, share, removed, round_index)
        scores = {unit.name: local.store.get(round_index, unit.name) for unit in share}
        merged = {}
        for part in gather_object([scores]):
            merged.update(part)
        if state.is_main_process:
            context.store.put_many(round_index, merged)
        else:
            context.store.remember(round_index, merged)
        return None  # criteria that train weights score jointly, on one process (splits_across_processes False)

    def score_pending(
        self, context: ScoringContext, pending: list[Unit], removed: list[Unit], round_index: int
    ) -> torch.nn.Module | None:
        """Compute scores for `pending` and put them into context.store as they become available; return the
        denoiser trained jointly while scoring, if any (None: the cut takes the input's own weights)."""
        raise NotImplementedError

    def settings(self) -> dict:
        """Options that change the scores (recorded for resume and in the report): every dataclass field
        not marked SCORE_NEUTRAL."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("score_neutral")}


SCORE_NEUTRAL = {"score_neutral": True}  # field metadata: this option does not change the scores

CRITERIA: dict[str, type[Criterion]] = {}


def register(name: str):
    """Class decorator: makes a criterion available by `name` (to `prune(criterion=name)` and the CLI)."""

    def decorator(cls: type[Criterion]) -> type[Criterion]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__}: a registered criterion is a dataclass (its fields are its options)")
        cls.name = name
        CRITERIA[name] = cls
        return cls

    return decorator


def options_of(cls: type) -> dict[str, type]:
    """{option: type} of a criterion class, read from its dataclass fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}


def make_criterion(cls: type[Criterion], options: dict) -> Criterion:
    """`cls(**options)`, with a one-line error naming the options that exist when one does not."""
    known = options_of(cls)
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = ", ".join(known) or "none"
        raise DiffpruneError(
            f"criterion {cls.name or cls.__name__} has no option {', '.join(unknown)}; its options: {listed}"
        )
    return cls(**options)


def describe(criterion) -> tuple[str, dict, bool]:
    """(name, settings, uses_budget) of a registered criterion or any object with a `score` method."""
    name = getattr(criterion, "name", "") or type(criterion).__name__
    settings = criterion.settings() if callable(getattr(criterion, "settings", None)) else {}
    return name, settings, bool(getattr(criterion, "uses_budget", False))
