"""`diffprune.prune(pipeline, criterion, budget)`: score, select, cut, in one call; the input is left untouched.

pipeline -> units -> criterion scores -> selection under a budget -> surgery -> PruneResult (save()).
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
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from diffprune import __version__
from diffprune.criteria import Criterion, ScoringContext, resolve_criterion
from diffprune.criteria.base import describe
from diffprune.criteria.score_store import ScoreStore
from diffprune.devices import placement_of, torch_dtype
from diffprune.distributed import is_main_process
from diffprune.errors import DiffpruneError
from diffprune.models.adapters import CalibrationSettings, adapter_for
from diffprune.models.components import pipeline_in_dtype, with_denoiser
from diffprune.models.model_card import write_model_card, write_score_chart
from diffprune.models.saved_cuts import save_pipeline
from diffprune.module_state import leaves_pipelines_untouched
from diffprune.outputs import check_new_output, staged_output, write_json_atomically
from diffprune.structure.costs import count_macs, count_parameters, pipeline_cost_inputs
from diffprune.structure.denoiser import denoiser_name, denoiser_of
from diffprune.structure.selection import DEFAULT_BUDGET, Budget, candidates_after, check_reachable, select_units
from diffprune.structure.surgery import remove_units
from diffprune.structure.units import Unit, find_units

WORK_FOLDER = ".diffprune-work"  # resume state inside an output folder; removed once the result is saved


@dataclass
class PruneResult:
    pipeline: object
    removed: list[str]
    scores: dict[str, float]
    report: dict
    original_pipeline: object = field(default=None, repr=False)

    def save(self, folder: str | Path) -> Path:
        """Write the pruned pipeline, pruning_report.json, README.md and a PNG chart of the scores; the folder
        is complete or absent. The denoiser is saved as a stock class where a stock config expresses the cut, else
        with its own code (see models.saved_cuts.save_pipeline and the model card for how each loads)."""
        folder = Path(folder)
        if not is_main_process():  # under accelerate, one process writes
            return folder
        folder = check_new_output(folder, allowed=(WORK_FOLDER,))
        with staged_output(folder) as staging:
            stock_classes = save_pipeline(self.pipeline, staging)
            write_json_atomically(staging / "pruning_report.json", self.report)
            chart = write_score_chart(self.report, staging / "scores.png")
            write_model_card(
                self.report,
                staging / "README.md",
                chart_name=chart.name if chart else None,
                stock_classes=stock_classes,
            )
        shutil.rmtree(folder / WORK_FOLDER, ignore_errors=True)
        return folder


def _fingerprint(denoiser) -> str:
    config = json.dumps(dict(denoiser.config), sort_keys=True, default=str)
    return hashlib.sha256(f"{config}|{count_parameters(denoiser)}".encode()).hexdigest()[:16]


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
    budget = budget if budget is not None else DEFAULT_BUDGET
    if not isinstance(budget, Budget):
        raise DiffpruneError(f"`budget` must be a Budget, e.g. Budget(keep_macs=0.7); got {type(budget).__name__}")
    if rounds < 1:
        raise DiffpruneError("`rounds` must be at least 1")
    if variants_per_batch < 1:
        raise DiffpruneError("`variants_per_batch` must be at least 1")
    criterion = resolve_criterion(criterion)
    # a copy: the caller's settings are left as they were
    calibration = dataclasses.replace(calibration or CalibrationSettings(), show_progress=show_progress)
    criterion_name, criterion_settings, uses_budget = describe(criterion)
    scoring_dtype = torch_dtype(dtype, placement_of(denoiser_of(pipeline)).device)
    scoring_pipeline = pipeline_in_dtype(pipeline, scoring_dtype)
    adapter = adapter_for(scoring_pipeline, calibration)
    denoiser = denoiser_of(scoring_pipeline).eval()
    inputs = pipeline_cost_inputs(scoring_pipeline)
    all_units = find_units(denoiser, inputs)
    units = [unit for unit in all_units if unit_filter(unit)] if unit_filter else all_units
    if not units:
        kinds = ", ".join(sorted({u.kind for u in all_units}))
        raise DiffpruneError(f"`unit_filter` leaves no candidate unit; kinds of units here: {kinds}")
    totals_before = {"params": count_parameters(denoiser), "macs": count_macs(denoiser, inputs)}
    check_reachable(units, budget, totals_before[budget.cost])
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
        "model_fingerprint": _fingerprint(denoiser),
        "scoring_dtype": str(placement_of(denoiser).dtype).removeprefix("torch."),
    }
    store = ScoreStore(Path(work_dir) / "scores.json" if work_dir else None, settings)
    context = ScoringContext(
        adapter,
        units,
        store,
        show_progress=show_progress,
        variants_per_batch=variants_per_batch,
        budget=budget,
        total_costs=totals_before,
        ranking=ranking,
        rounds=rounds,
    )

    removed, latest_scores, score_rounds = [], {}, {}
    for round_index in range(rounds):
        candidates = candidates_after(units, removed)
        scores = criterion.score(context, candidates, removed, round_index)
        latest_scores.update(scores)
        score_rounds.update(dict.fromkeys(scores, round_index))
        removed += context.select(scores, removed, round_index)

    # The cut comes from the input's own weights (so its precision), or from the trained copy that criteria
    # which train weights jointly (gradflow with train_weights) leave, brought back to the input's precision.
    trained_denoiser = context.cache.get("trained_denoiser")
    if trained_denoiser is None:
        source_denoiser = denoiser_of(pipeline)
    else:
        source_denoiser = trained_denoiser.eval().requires_grad_(False).to(placement_of(denoiser_of(pipeline)).dtype)
    removed, pruned_denoiser = _cut_within_measured_budget(
        source_denoiser, units, removed, latest_scores, budget, totals_before, inputs, ranking
    )
    totals_after = {"params": count_parameters(pruned_denoiser), "macs": count_macs(pruned_denoiser, inputs)}
    pruned_pipeline = with_denoiser(pipeline, pruned_denoiser)

    removed_names = {u.name for u in removed}
    report = {
        "diffprune_version": __version__,
        "source": source or str(getattr(pipeline.config, "_name_or_path", "") or type(pipeline).__name__),
        "pipeline_class": type(pipeline).__name__,
        "denoiser": {"component": denoiser_name(pipeline), "class": type(denoiser).__name__},
        "family": adapter.family,
        "settings": settings,
        "budget": budget.describe(),
        "budget_settings": budget.__dict__,
        "ranking": ranking,
        "scoring": context.report,
        "totals_before": totals_before,
        "totals_after": totals_after,
        "kept_fraction": {key: totals_after[key] / totals_before[key] for key in totals_before},
        "removed_units": [u.name for u in removed],
        "units": [
            {
                "name": u.name,
                "kind": u.kind,
                "params": u.params,
                "macs": u.macs,
                "score": latest_scores.get(u.name),
                "scored_in_round": score_rounds.get(u.name),
                "removed": u.name in removed_names,
            }
            for u in units
        ],
    }
    return PruneResult(pruned_pipeline, [u.name for u in removed], latest_scores, report, original_pipeline=pipeline)


def _cut_within_measured_budget(denoiser, units, removed, scores, budget, totals_before, inputs, ranking):
    """Cut, then confirm the budget on the cut model, removing the next-best units if it is not met (unit
    costs are measured per module in the full model, which can miss work shared outside the modules)."""
    pruned_denoiser = remove_units(denoiser, [u.name for u in removed])
    if budget.num_units is not None:
        return removed, pruned_denoiser
    limit = budget.fraction_kept() * totals_before[budget.cost]
    measure = (lambda m: count_parameters(m)) if budget.cost == "params" else (lambda m: count_macs(m, inputs))
    while measure(pruned_denoiser) > limit:
        extra = select_units(
            units, scores, Budget(num_units=len(removed) + 1), totals_before[budget.cost], removed, ranking=ranking
        )
        if not extra:
            raise DiffpruneError(f"cannot {budget.describe()}: no further unit can be removed")
        removed = removed + extra[:1]
        pruned_denoiser = remove_units(denoiser, [u.name for u in removed])
    return removed, pruned_denoiser
