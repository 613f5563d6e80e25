"""`diffprune.prune(pipeline, criterion, budget)`: plan, then cut, in one call; the input is left untouched.

plan: one probing forward of the denoiser (units, shapes, MACs on the pipeline's own cost inputs) -> the
    criterion's scores -> the selection under the budget, held in a PrunePlan (serialisable; its settings are
    what resume fingerprints, and the report prints it);
cut: surgery on the plan's units (no second probe), the budget confirmed on the cut model -> PruneResult (save()).
Progressive mode (rounds=K) removes a slice of the budget per round and re-scores what is left.

Precision: `dtype` is the precision scoring runs in; the default (None) is the pipeline's own, so a pipeline
loaded in bf16 or fp16 scores in it and an fp32 one in fp32. Measured on the bundled models (docs/results.md,
"LD-Pruner scoring in fp32 and bf16"): bf16 LD-Pruner scores kept the fp32 ranking (Spearman 0.96 to 0.999, the
same or nearly the same units selected) but ran 7 to 18 times slower on a CPU without bf16 arithmetic, so
bf16 is not forced on anyone; on a GPU `dtype="bf16"` is the option to check with eval/benchmark_scoring_speed.py.
Scoring in another dtype works on a converted copy; the cut is always taken from the input pipeline's own
weights, so the pruned model keeps their precision, and the input pipeline is never changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from diffprune import __version__
from diffprune.criteria import Criterion, ScoringContext, resolve_criterion
from diffprune.criteria.base import ScoreResult, describe
from diffprune.criteria.score_store import ScoreStore
from diffprune.devices import placement_of, torch_dtype
from diffprune.errors import DiffpruneError
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.models.components import pipeline_in_dtype, with_denoiser
from diffprune.models.saved_folder import save_pruned_folder
from diffprune.module_state import leaves_pipelines_untouched
from diffprune.structure.costs import count_costs, describe_inputs, pipeline_cost_inputs
from diffprune.structure.denoiser import denoiser_name, denoiser_of
from diffprune.structure.selection import (
    DEFAULT_BUDGET,
    Budget,
    candidates_after,
    check_reachable,
    outermost,
    select_units,
)
from diffprune.structure.surgery import remove_units
from diffprune.structure.units import DenoiserSurvey, Unit, survey_denoiser, units_by_name


@dataclass
class PrunePlan:
    """What prune decides before any cut: the candidate units (with their costs in the original), each one's
    score and the round it was scored in, the removal set, and the settings that produced the scores (what the
    score store fingerprints for resume). The budget and ranking say how the cut confirms the budget;
    totals_before and cost_inputs, what the costs were measured on. JSON round trip: to_dict / from_dict."""

    units: list[Unit]
    settings: dict
    budget: Budget
    ranking: str
    totals_before: dict[str, int]
    cost_inputs: str = ""  # the inputs MACs are counted on (costs.describe_inputs)
    scores: dict[str, float] = field(default_factory=dict)
    scored_in_round: dict[str, int] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def removed_units(self) -> list[Unit]:
        return units_by_name(self.units, self.removed)

    def unit_rows(self) -> list[dict]:
        """The report's "units": every candidate with its costs, score, round and whether it goes."""
        removed = set(self.removed)
        return [
            {
                "name": u.name,
                "kind": u.kind,
                "params": u.params,
                "macs": u.macs,
                "score": self.scores.get(u.name),
                "scored_in_round": self.scored_in_round.get(u.name),
                "removed": u.name in removed,
            }
            for u in self.units
        ]

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # JSON's own types (tuples become lists)

    @classmethod
    def from_dict(cls, data: dict) -> PrunePlan:
        return cls(
            **{
                **data,
                "units": [Unit(**unit) for unit in data["units"]],
                "budget": Budget(**data["budget"]),
                "scored_in_round": {name: int(r) for name, r in data["scored_in_round"].items()},
            }
        )


@dataclass
class PruneResult:
    pipeline: object
    removed: list[str]
    scores: dict[str, float]
    report: dict
    original_pipeline: object = field(default=None, repr=False)
    plan: PrunePlan | None = field(default=None, repr=False)  # units, scores, settings, the removal set the cut kept

    def save(self, folder: str | Path) -> Path:
        """Write the pruned pipeline, pruning_report.json, README.md and a PNG chart of the scores; the folder
        is complete or absent (models.saved_folder.save_pruned_folder, the one writer of saved folders)."""
        return save_pruned_folder(folder, self.pipeline, self.report)


def _fingerprint(denoiser, params: int) -> str:
    config = json.dumps(dict(denoiser.config), sort_keys=True, default=str)
    return hashlib.sha256(f"{config}|{params}".encode()).hexdigest()[:16]


@leaves_pipelines_untouched("pipeline")
def prune(
    pipeline,
    criterion: str | Criterion = "ld-pruner",
    budget: Budget | None = None,
    *,
    unit_filter: Callable[[Unit], bool] | None = None,
    rounds: int = 1,
    calibration: CalibrationSettings | None = None,
    work_dir: str | Path | None = None,
    variants_per_batch: int = 8,
    ranking: str = "score",
    show_progress: bool = True,
    source: str | None = None,
    dtype: str | None = None,
) -> PruneResult:
    """Prune `pipeline`'s denoiser (UNet or diffusion transformer); the input pipeline is left untouched (weights, devices, dtypes, modes, flags).

    criterion: a registered name ("ld-pruner", "gradflow", ...), a Criterion instance with its options
        (`LDPruner(statistic="paired")`), or any object with score(context, candidates, removed, round_index).
    budget: `Budget(keep_macs=...)`, `Budget(keep_params=...)` or `Budget(num_units=...)`; default: selection.DEFAULT_BUDGET.
    unit_filter: only units for which it returns True are candidates (e.g. `lambda unit: unit.kind == "resnet"`).
    rounds: progressive pruning, re-scoring what is left after each of `rounds` slices of the budget.
    work_dir: where scores are stored as they are computed; a rerun with the same settings resumes.
    ranking: "score" (lowest score first, default) or "score-per-cost" (see selection.py).
    dtype: "fp32", "bf16" or "fp16" (GPU only) to score in that precision; None scores in the pipeline's own.
    """
    budget = _checked(budget, rounds, variants_per_batch)
    criterion = resolve_criterion(criterion)
    # a copy: the caller's settings are left as they were
    calibration = dataclasses.replace(calibration or CalibrationSettings(), show_progress=show_progress)
    denoiser = denoiser_of(pipeline)
    scoring_pipeline = pipeline_in_dtype(pipeline, torch_dtype(dtype, placement_of(denoiser).device))
    adapter = adapter_for(scoring_pipeline, calibration)
    scoring_denoiser = denoiser_of(scoring_pipeline).eval()
    survey = survey_denoiser(scoring_denoiser, pipeline_cost_inputs(scoring_pipeline))
    plan = _new_plan(survey, scoring_denoiser, criterion, budget, unit_filter, rounds, ranking, calibration)
    store = ScoreStore(Path(work_dir) / "scores.json" if work_dir else None, plan.settings)
    context = ScoringContext(
        adapter,
        plan.units,
        store,
        show_progress=show_progress,
        variants_per_batch=variants_per_batch,
        budget=budget,
        total_costs=plan.totals_before,
        ranking=ranking,
        rounds=rounds,
    )
    trained = _score_and_select(plan, criterion, context)
    # The cut comes from the input's own weights (so its precision), or from the copy a criterion trained
    # jointly (gradflow with train_weights), brought back to the input's precision.
    if trained is not None:
        denoiser = trained.eval().requires_grad_(False).to(placement_of(denoiser).dtype)
    pruned_denoiser, plan, totals_after = cut(denoiser, plan, survey.inputs)
    report = _report(pipeline, plan, totals_after, adapter.family, context.report, source, type(scoring_denoiser))
    pruned_pipeline = with_denoiser(pipeline, pruned_denoiser)
    return PruneResult(pruned_pipeline, plan.removed, plan.scores, report, original_pipeline=pipeline, plan=plan)


def _checked(budget: Budget | None, rounds: int, variants_per_batch: int) -> Budget:
    budget = budget if budget is not None else DEFAULT_BUDGET
    if not isinstance(budget, Budget):
        raise DiffpruneError(f"`budget` must be a Budget, e.g. Budget(keep_macs=0.7); got {type(budget).__name__}")
    if rounds < 1:
        raise DiffpruneError("`rounds` must be at least 1")
    if variants_per_batch < 1:
        raise DiffpruneError("`variants_per_batch` must be at least 1")
    return budget


def _new_plan(survey: DenoiserSurvey, denoiser, criterion, budget, unit_filter, rounds, ranking, calibration):
    """A plan with its candidate units and settings, not yet scored; fails before any scoring if no unit is left
    or the budget cannot be met."""
    units = [unit for unit in survey.units if unit_filter(unit)] if unit_filter else survey.units
    if not units:
        kinds = ", ".join(sorted({u.kind for u in survey.units}))
        raise DiffpruneError(f"`unit_filter` leaves no candidate unit; kinds of units here: {kinds}")
    totals_before = {"params": survey.params, "macs": survey.macs}
    check_reachable(units, budget, totals_before[budget.cost])
    criterion_name, criterion_settings, uses_budget = describe(criterion)
    # One-shot scores of a budget-blind criterion do not depend on the budget, so they are reusable across
    # budgets from the same work folder; progressive rounds and budget-aware criteria record it.
    scores_depend_on_budget = rounds > 1 or uses_budget
    settings = {
        "criterion": criterion_name,
        "criterion_settings": criterion_settings,
        "budget": budget.__dict__ if scores_depend_on_budget else None,
        "rounds": rounds,
        "candidates": [u.name for u in units] if unit_filter else None,
        # later rounds are scored after earlier selections; budget-aware criteria aim at the selection
        "ranking": ranking if scores_depend_on_budget else None,
        "calibration": calibration.as_dict(),
        "model_fingerprint": _fingerprint(denoiser, survey.params),
        "scoring_dtype": str(placement_of(denoiser).dtype).removeprefix("torch."),
    }
    return PrunePlan(units, settings, budget, ranking, totals_before, describe_inputs(survey.inputs))


def _score_and_select(plan: PrunePlan, criterion, context: ScoringContext) -> nn.Module | None:
    """Each round: score the candidates left, record the scores in the plan and select that round's slice of the
    budget into plan.removed. Returns the denoiser the criterion trained while scoring, if it trained one."""
    removed, trained = [], None
    for round_index in range(context.rounds):
        candidates = candidates_after(plan.units, removed)
        result = ScoreResult.of(criterion.score(context, candidates, removed, round_index))
        plan.scores.update(result)
        plan.scored_in_round.update(dict.fromkeys(result, round_index))
        removed = outermost(removed + context.select(result, removed, round_index))
        trained = result.trained_denoiser if result.trained_denoiser is not None else trained
    plan.removed = [u.name for u in removed]
    return trained


def cut(denoiser, plan: PrunePlan, inputs: dict) -> tuple[nn.Module, PrunePlan, dict[str, int]]:
    """Cut `plan.removed` from `denoiser` (the plan's units are reused: no second probe), then confirm the budget
    on the cut model, measured on `inputs`: unit costs are measured per module in the full model, which can miss
    work shared outside the modules, so while the cut exceeds the budget the next unit in ranking order goes
    too. Returns the cut, the plan with its final removal set, and the cut's measured totals."""
    budget = plan.budget
    removed = plan.removed_units()
    while True:
        pruned = remove_units(denoiser, [u.name for u in removed], units=plan.units)
        totals = count_costs(pruned, inputs)
        if (
            budget.num_units is not None
            or totals[budget.cost] <= budget.fraction_kept() * plan.totals_before[budget.cost]
        ):
            return pruned, dataclasses.replace(plan, removed=[u.name for u in removed]), totals
        extra = select_units(
            plan.units,
            plan.scores,
            Budget(num_units=len(removed) + 1),
            plan.totals_before[budget.cost],
            removed,
            ranking=plan.ranking,
        )
        if not extra:
            raise DiffpruneError(f"cannot {budget.describe()}: no further unit can be removed")
        removed = removed + extra[:1]


def _report(pipeline, plan: PrunePlan, totals_after, family, scoring, source, denoiser_class) -> dict:
    """pruning_report.json: the plan, what scoring cost, and the cut's measured totals."""
    return {
        "diffprune_version": __version__,
        "source": source or str(getattr(pipeline.config, "_name_or_path", "") or type(pipeline).__name__),
        "pipeline_class": type(pipeline).__name__,
        "denoiser": {"component": denoiser_name(pipeline), "class": denoiser_class.__name__},
        "family": family,
        "settings": plan.settings,
        "budget": plan.budget.describe(),
        "budget_settings": plan.budget.__dict__,
        "ranking": plan.ranking,
        "scoring": scoring,
        "totals_before": plan.totals_before,
        "totals_after": totals_after,
        "kept_fraction": {key: totals_after[key] / plan.totals_before[key] for key in plan.totals_before},
        "macs_counted_on": plan.cost_inputs,
        "removed_units": plan.removed,
        "units": plan.unit_rows(),
    }
