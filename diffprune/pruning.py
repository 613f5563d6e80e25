"""`diffprune.prune(pipeline, method=..., keep_macs=...)`: score, select, cut, in one call.

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

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .adapters import CalibrationSettings, adapter_for
from .costs import count_macs, count_parameters, pipeline_cost_inputs
from .criteria import ScoringContext, get_criterion
from .devices import pipeline_in_dtype, placement_of, torch_dtype
from .errors import DiffpruneError
from .loading import with_unet
from .score_store import ScoreStore
from .selection import Budget, candidates_after, check_reachable, select_units
from .surgery import remove_units
from .units import find_units

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
        is complete or absent. The UNet is saved as a stock class where a stock config expresses the cut, else
        with its own code (see pruned_models.save_pipeline and the model card for how each loads)."""
        from .distributed import is_main_process
        from .outputs import check_new_output, staged_output, write_json_atomically
        from .pruned_models import save_pipeline
        from .reports import write_model_card, write_score_chart

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


def _fingerprint(unet) -> str:
    config = json.dumps(dict(unet.config), sort_keys=True, default=str)
    return hashlib.sha256(f"{config}|{count_parameters(unet)}".encode()).hexdigest()[:16]


def prune(
    pipeline,
    method: str = "ld-pruner",
    keep_macs: float | None = None,
    keep_params: float | None = None,
    num_units: int | None = None,
    rounds: int = 1,
    calibration: CalibrationSettings | None = None,
    work_dir: str | Path | None = None,
    criterion_options: dict | None = None,
    variants_per_batch: int = 8,
    kinds: list[str] | None = None,
    ranking: str = "score",
    show_progress: bool = True,
    source: str | None = None,
    dtype: str | None = None,
) -> PruneResult:
    """Prune `pipeline`'s UNet; the input pipeline is left untouched.

    dtype: "fp32", "bf16" or "fp16" (GPU only) to score in that precision; None scores in the pipeline's own.

    work_dir: where scores are stored as they are computed; a rerun with the same settings resumes.
    kinds: only units of these kinds are candidates (e.g. ["resnet", "attention", "mid_block"]).
    ranking: "score" (lowest score first, default) or "score-per-cost" (see selection.py).
    """
    budget = Budget.default_if_empty(keep_macs, keep_params, num_units)
    if rounds < 1:
        raise DiffpruneError("--rounds must be at least 1")
    if variants_per_batch < 1:
        raise DiffpruneError("--variants-per-batch must be at least 1")
    calibration = calibration or CalibrationSettings()
    calibration.show_progress = show_progress
    criterion = get_criterion(method, **(criterion_options or {}))
    scoring_dtype = torch_dtype(dtype, placement_of(pipeline.unet).device)
    scoring_pipeline = pipeline_in_dtype(pipeline, scoring_dtype)
    adapter = adapter_for(scoring_pipeline, calibration)
    unet = scoring_pipeline.unet.eval()
    inputs = pipeline_cost_inputs(scoring_pipeline)
    units = find_units(unet, inputs)
    if kinds:
        unknown = set(kinds) - {u.kind for u in units}
        if unknown:
            raise DiffpruneError(
                f"no units of kind {', '.join(sorted(unknown))}; kinds here: {', '.join(sorted({u.kind for u in units}))}"
            )
        units = [u for u in units if u.kind in kinds]
    totals_before = {"params": count_parameters(unet), "macs": count_macs(unet, inputs)}
    check_reachable(units, budget, totals_before[budget.cost])
    # One-shot scores of a budget-blind criterion do not depend on the budget, so they are reusable across
    # budgets from the same work folder; progressive rounds and budget-aware criteria record it.
    scores_depend_on_budget = rounds > 1 or criterion.uses_budget
    settings = {
        "method": method,
        "criterion": criterion.settings(),
        "budget": budget.__dict__ if scores_depend_on_budget else None,
        "rounds": rounds,
        "kinds": sorted(kinds) if kinds else None,
        "ranking": ranking if rounds > 1 else None,  # later rounds are scored after earlier selections
        "calibration": calibration.as_dict(),
        "model_fingerprint": _fingerprint(unet),
        "scoring_dtype": str(placement_of(unet).dtype).removeprefix("torch."),
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
    )

    removed, latest_scores, score_rounds = [], {}, {}
    for round_index in range(rounds):
        candidates = candidates_after(units, removed)
        scores = criterion.score(context, candidates, removed, round_index)
        latest_scores.update(scores)
        score_rounds.update(dict.fromkeys(scores, round_index))
        removed += select_units(
            units,
            scores,
            budget,
            totals_before[budget.cost],
            removed,
            target_fraction_removed=(round_index + 1) / rounds,
            ranking=ranking,
        )

    # The cut comes from the input's own weights (so its precision), or from the trained copy that criteria
    # which train weights jointly (gradflow with train_weights) leave, brought back to the input's precision.
    trained_unet = context.cache.get("trained_unet")
    if trained_unet is None:
        source_unet = pipeline.unet
    else:
        source_unet = trained_unet.eval().requires_grad_(False).to(placement_of(pipeline.unet).dtype)
    removed, pruned_unet = _cut_within_measured_budget(
        source_unet, units, removed, latest_scores, budget, totals_before, inputs, ranking
    )
    totals_after = {"params": count_parameters(pruned_unet), "macs": count_macs(pruned_unet, inputs)}
    pruned_pipeline = with_unet(pipeline, pruned_unet)

    removed_names = {u.name for u in removed}
    report = {
        "diffprune_version": __version__,
        "source": source or str(getattr(pipeline.config, "_name_or_path", "") or type(pipeline).__name__),
        "pipeline_class": type(pipeline).__name__,
        "family": adapter.family,
        "settings": settings,
        "budget": budget.describe(),
        "budget_settings": budget.__dict__,
        "ranking": ranking,
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


def _cut_within_measured_budget(unet, units, removed, scores, budget, totals_before, inputs, ranking):
    """Cut, then confirm the budget on the cut model, removing the next-best units if it is not met (unit
    costs are measured per module in the full model, which can miss work shared outside the modules)."""
    pruned_unet = remove_units(unet, [u.name for u in removed])
    if budget.num_units is not None:
        return removed, pruned_unet
    limit = budget.fraction_kept() * totals_before[budget.cost]
    measure = (lambda m: count_parameters(m)) if budget.cost == "params" else (lambda m: count_macs(m, inputs))
    while measure(pruned_unet) > limit:
        extra = select_units(
            units, scores, Budget(num_units=len(removed) + 1), totals_before[budget.cost], removed, ranking=ranking
        )
        if not extra:
            raise DiffpruneError(f"cannot {budget.describe()}: no further unit can be removed")
        removed = removed + extra[:1]
        pruned_unet = remove_units(unet, [u.name for u in removed])
    return removed, pruned_unet
