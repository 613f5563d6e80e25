"""The numbers as people read them: one summary row per model, the report header, and the text table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from diffprune.evaluation.report_keys import current_names

if TYPE_CHECKING:
    from diffprune.evaluation.running import EvaluationRun
    from diffprune.evaluation.settings import EvaluationSettings


SUMMARY_COLUMNS = [
    "model",
    "params",
    "macs",
    "latency_ms",
    "denoiser_latency_ms",
    "speedup",
    "speedup_iqr",
    "denoiser_speedup",
    "predicted_speedup",
    "fid_vs_reference",
    "fid_vs_real_images",
    "clip_score",
    "clap_score",
    "timing_problem",
]


def report_header(run: EvaluationRun, config: EvaluationSettings) -> dict:
    """What every report states about how its numbers were made."""
    return {
        "reference": run.reference,
        "family": run.family,
        "metrics": list(run.metrics),
        "scored_with": run.scorers,
        "seeds": run.seeds,
        "prompts": run.prompts,
        "settings": config.as_dict(),
    }


def summary_row(label: str, row: dict) -> dict:
    """One flat table row (SUMMARY_COLUMNS) from a model's nested results."""
    latency = current_names(row.get("latency", {}))  # reports saved with older key names read alike
    speedup = current_names(row.get("speedup", {}))
    fid = row.get("fid", {})
    part = next((name for name in ("pipeline", "denoiser_forward") if name in speedup.get("ratios", {})), None)
    return {
        "model": label,
        "params": row.get("params"),
        "macs": row.get("macs"),
        "latency_ms": latency.get("pipeline", {}).get("median_ms"),
        "denoiser_latency_ms": latency.get("denoiser_forward", {}).get("median_ms"),
        # The whole call's speedup when it was timed (None when its timing is a measurement problem), else the
        # denoiser forward's; with the interquartile range of its per-round ratios.
        "speedup": speedup.get(part) if part else None,
        "speedup_iqr": _range_text(speedup["ratios"][part]["iqr"]) if part and speedup.get(part) else None,
        "denoiser_speedup": speedup.get("denoiser_forward"),
        "predicted_speedup": speedup.get("predicted_from_macs"),
        "fid_vs_reference": fid.get("vs_reference"),
        "fid_vs_real_images": fid.get("vs_real_images"),
        "clip_score": row.get("clip_score"),
        "clap_score": row.get("clap_score"),
        "timing_problem": speedup.get("measurement_problem"),
    }


def _range_text(interval: list[float]) -> str:
    return f"{interval[0]:.2f}-{interval[1]:.2f}"


NOTE_COLUMNS = {"timing_problem"}  # long text: the table says "see note", the note follows the table


def format_value(value) -> str:
    """A cell's text: thousands separated, three significant digits below 1000, a dash for no value."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def cell_value(row: dict, column: str):
    """What a table cell shows: the value, or a pointer to the note below the table for note columns."""
    value = row.get(column)
    return "see note" if column in NOTE_COLUMNS and value else value


def table_notes(rows: list[dict]) -> list[str]:
    """The notes under a table: one per model whose pipeline timing is a measurement problem."""
    return [
        f"{row['model']}: pipeline speedup not reported, a measurement problem: {row['timing_problem']}"
        for row in rows
        if row.get("timing_problem")
    ]


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A plain-text table of summary rows, then its notes; columns with no value in any row are left out."""
    columns = columns or [c for c in SUMMARY_COLUMNS if any(row.get(c) is not None for row in rows)]
    cells = [[format_value(cell_value(row, column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
    lines += [f"note: {note}" for note in table_notes(rows)]
    return "\n".join(lines)


def params_text(params) -> str:
    return f"{params / 1e6:.2f}M params" if params is not None else "params not counted"


def latency_text(summary: dict) -> str:
    if summary["latency_ms"] is not None:
        return f"{summary['latency_ms']:.0f} ms / call"
    if summary["denoiser_latency_ms"] is not None:
        return f"{summary['denoiser_latency_ms']:.1f} ms / denoiser call"
    return "latency not measured"
