"""`compare_and_report`: several models through the same evaluation, written as a folder people open: an
image or audio grid, an HTML comparison page, report.json and the text table."""

from __future__ import annotations

import re
from pathlib import Path

from diffprune.distributed import is_main_process
from diffprune.errors import DiffpruneError
from diffprune.evaluation.grids import draw_comparison_grid
from diffprune.evaluation.html_report import render_report, wav_bytes, wav_data_uri
from diffprune.evaluation.running import EvaluationRun, load_models, run_evaluation
from diffprune.evaluation.settings import EvaluationSettings
from diffprune.evaluation.tables import (
    SUMMARY_COLUMNS,
    format_table,
    latency_text,
    params_text,
    report_header,
    summary_row,
)
from diffprune.outputs import check_new_output, staged_output, write_json_atomically


def slug(label: str) -> str:
    """A file-name-safe version of a model label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "model"


def compare_and_report(
    models: dict,
    reference_label: str | None,
    out_folder: str | Path,
    prompts: list[str] | None = None,
    num_samples: int | None = None,
    metrics=("macs", "latency"),
    **settings,
) -> dict:
    """Run every model in {label: pipeline or path} on the same prompts and seeds; write grid.png, samples/,
    audio/ (audio families), report.html and report.json into `out_folder` (which must be new or empty).

    num_samples None: one sample per prompt (text families) or 8 seeds. Returns {"columns", "rows" (one
    flat dict per model), "table" (printable text), "files", "report" (what report.json holds)}.
    """
    out_folder = check_new_output(out_folder)
    if reference_label is not None and reference_label not in models:
        raise DiffpruneError(f"reference {reference_label!r} is not among the models ({', '.join(models)})")
    num_samples = num_samples or (len(prompts) if prompts else 8)
    config = EvaluationSettings(metrics=metrics, num_samples=num_samples, prompts=prompts, **settings)
    run = run_evaluation(load_models(models), reference_label, config, keep_samples=True)
    rows = [summary_row(label, row) for label, row in run.rows.items()]
    columns = [c for c in SUMMARY_COLUMNS if any(row.get(c) is not None for row in rows)]
    report = {**report_header(run, config), "models": run.rows, "summary": rows}

    if is_main_process():  # under accelerate, one process writes
        with staged_output(out_folder) as staging:
            files = _write_comparison(staging, run, rows, columns, report, config)
    else:
        files = {}
    return {
        "columns": columns,
        "rows": rows,
        "table": format_table(rows, columns),
        "files": {name: str(out_folder / relative) for name, relative in files.items()},
        "report": report,
    }


def _write_comparison(folder: Path, run: EvaluationRun, rows, columns, report, config) -> dict:
    shown = min(len(run.seeds), config.max_grid_rows)
    row_labels = [
        f"{run.prompts[i]} (seed {run.seeds[i]})" if run.prompts else f"seed {run.seeds[i]}" for i in range(shown)
    ]
    columns_for_grid = []
    audio_uris = {}
    for summary in rows:
        label = summary["model"]
        batch = run.generated[label]
        header = [label, params_text(summary["params"]), latency_text(summary)]
        columns_for_grid.append((header, batch.images[:shown]))
        sample_folder = folder / "samples" / slug(label)
        sample_folder.mkdir(parents=True, exist_ok=True)
        for seed, image in zip(run.seeds, batch.images, strict=True):
            image.save(sample_folder / f"seed-{seed}.png")
        if batch.audios is not None:
            audio_folder = folder / "audio" / slug(label)
            audio_folder.mkdir(parents=True, exist_ok=True)
            for seed, audio in zip(run.seeds, batch.audios, strict=True):
                (audio_folder / f"seed-{seed}.wav").write_bytes(wav_bytes(audio, batch.sample_rate))
            audio_uris[label] = [wav_data_uri(audio, batch.sample_rate) for audio in batch.audios[:shown]]
    grid = draw_comparison_grid(columns_for_grid, row_labels)
    grid.save(folder / "grid.png")
    audio = (list(audio_uris), row_labels, audio_uris) if audio_uris else None
    title = "diffprune comparison" + (f" against {run.reference}" if run.reference else "")
    page = render_report(title, columns, rows, grid, report["settings"] | {"scored_with": run.scorers}, audio)
    (folder / "report.html").write_text(page, encoding="utf-8")
    write_json_atomically(folder / "report.json", report)
    files = {"grid": "grid.png", "html": "report.html", "json": "report.json", "samples": "samples"}
    if audio_uris:
        files["audio"] = "audio"
    return files
