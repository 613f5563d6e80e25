"""A saved pruned folder, written in one place: `save_pruned_folder` is what `prune` (PruneResult.save),
`diffprune distill`, `diffprune export`, the recipes in pipelines/ and the demo write. The folder appears
complete or not at all (outputs.staged_output), and the resume state of the run that made it goes once it is.

    model_index.json, <component>/  the pipeline, in the plainest form the cut allows (saved_cuts.save_pipeline)
    pruning_report.json             what was removed and why: units, scores, MACs and parameters before/after,
                                    settings (for a cut saved by hand: only the removed units its config names)
    README.md                       the model card: those numbers and how the folder loads (model_card.py)
    scores.png                      a chart of the unit scores (needs matplotlib, the plots extra)
    distillation_report.json        after distillation: student, teacher, settings and loss history

A folder made from another saved folder (distill, export) carries that folder's pruning report forward
(`pruning_report_of`), so the removed units stay said in plain words however often a cut is rewritten.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from diffprune.distributed import is_main_process
from diffprune.models.model_card import write_model_card, write_removed_units_card, write_score_chart
from diffprune.models.saved_cuts import removed_unit_names, save_pipeline
from diffprune.outputs import WORK_FOLDER, check_new_output, staged_output, write_json_atomically

REPORT_FILE = "pruning_report.json"
MODEL_CARD_FILE = "README.md"
SCORE_CHART_FILE = "scores.png"
DISTILLATION_REPORT_FILE = "distillation_report.json"


def save_pruned_folder(
    folder: str | Path, pipeline, pruning_report: dict | None, distillation_report: dict | None = None
) -> Path:
    """Write `pipeline` with its pruning report, model card and score chart (and the distillation report, when
    given) into `folder`, which must be new or hold only a run's resume state; under accelerate, one process
    writes. A `pruning_report` of None (a pipeline with nothing removed) writes the pipeline alone."""
    folder = Path(folder)
    if not is_main_process():
        return folder
    folder = check_new_output(folder, allowed=(WORK_FOLDER,))
    with staged_output(folder) as staging:
        stock_classes = save_pipeline(pipeline, staging)
        if pruning_report is not None:
            write_json_atomically(staging / REPORT_FILE, pruning_report)
            write_card(pruning_report, staging, stock_classes)
        if distillation_report is not None:
            write_json_atomically(staging / DISTILLATION_REPORT_FILE, distillation_report)
    shutil.rmtree(folder / WORK_FOLDER, ignore_errors=True)
    return folder


def write_card(pruning_report: dict, folder: Path, stock_classes: bool) -> None:
    """README.md, with scores.png beside it when the report has scores (a full report from `prune`)."""
    card = folder / MODEL_CARD_FILE
    if "units" not in pruning_report:  # a cut saved by hand: its config names the removed units, nothing more
        write_removed_units_card(pruning_report["removed_units"], card, stock_classes)
        return
    chart = write_score_chart(pruning_report, folder / SCORE_CHART_FILE)
    write_model_card(pruning_report, card, chart_name=chart.name if chart else None, stock_classes=stock_classes)


def pruning_report_of(source: str | Path, pruned_denoiser) -> dict | None:
    """The pruning report a folder made from `source` carries: `source`'s pruning_report.json; for a cut saved
    by hand (no report), the removed units `pruned_denoiser`'s config names; None when nothing was removed."""
    report = Path(source) / REPORT_FILE
    if report.is_file():
        return json.loads(report.read_text())
    names = removed_unit_names(pruned_denoiser)
    return {"removed_units": names} if names else None
