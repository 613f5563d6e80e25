"""The numbers as people read them: one summary row per model, the report header, and the text table."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    "predicted_speedup",
    "fid_vs_reference",
    "fid_vs_real_images",
    "clip_score",
    "clap_score",
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
    latency = row.get("latency", {})
    speedup = row.get("speedup", {})
    fid = row.get("fid", {})
    return {
        "model": label,
        "params": row.get("params"),
        "macs": row.get("macs"),
        "latency_ms": latency.get("pipeline", {}).get("median_ms"),
        "denoiser_latency_ms": latency.get("unet_forward", {}).get("median_ms"),
        "speedup": speedup.get("pipeline", speedup.get("unet_forward")),
        "predicted_speedup": speedup.get("predicted_from_macs"),
        "fid_vs_reference": fid.get("vs_reference"),
        "fid_vs_real_images": fid.get("vs_real_images"),
        "clip_score": row.get("clip_score"),
        "clap_score": row.get("clap_score"),
    }


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A plain-text table of summary rows; columns with no value in any row are left out."""
    from diffprune.evaluation.html_report import format_value

    columns = columns or [c for c in SUMMARY_COLUMNS if any(row.get(c) is not None for row in rows)]
    cells = [[format_value(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def params_text(params) -> str:
    return f"{params / 1e6:.2f}M params" if params is not None else "params not counted"


def latency_text(summary: dict) -> str:
    if summary["latency_ms"] is not None:
        return f"{summary['latency_ms']:.0f} ms / call"
    if summary["denoiser_latency_ms"] is not None:
        return f"{summary['denoiser_latency_ms']:.1f} ms / denoiser call"
    return "latency not measured"
