"""Human-readable outputs of a pruning run: a model card (README.md) and a chart of the scores (PNG)."""

from __future__ import annotations

from pathlib import Path


def write_score_chart(report: dict, path: Path) -> Path | None:
    """Horizontal bars of every scored unit, removed ones highlighted; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = sorted((u for u in report["units"] if u["score"] is not None), key=lambda u: u["score"])
    if not rows:
        return None
    height = max(3.0, 0.22 * len(rows) + 1.2)
    figure, axes = plt.subplots(figsize=(9, height))
    colors = ["#d62728" if u["removed"] else "#1f77b4" for u in rows]
    axes.barh([u["name"] for u in rows], [u["score"] for u in rows], color=colors)
    axes.invert_yaxis()
    axes.set_xlabel(f"{report['settings']['method']} score (lower = safer to remove)")
    axes.set_title(f"Unit scores; red = removed ({report['budget']})")
    axes.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_model_card(report: dict, path: Path, chart_name: str | None = None, stock_classes: bool = False) -> None:
    """stock_classes: the folder's UNet is saved as a stock diffusers class (see pruned_models.save_pipeline)."""
    from .pruned_models import load_instructions

    before, after = report["totals_before"], report["totals_after"]
    lines = [
        f"# Pruned {report['pipeline_class']}",
        "",
        f"Pruned from `{report['source']}` with diffprune {report['diffprune_version']}, method "
        f"`{report['settings']['method']}`, budget: {report['budget']}, rounds: {report['settings']['rounds']}.",
        "",
        "| | before | after | kept |",
        "|---|---:|---:|---:|",
        f"| UNet parameters | {before['params']:,} | {after['params']:,} | {after['params'] / before['params']:.1%} |",
        f"| UNet MACs (one forward, batch 1) | {before['macs']:,} | {after['macs']:,} | {after['macs'] / before['macs']:.1%} |",
        "",
        "MACs are measured on the cut model with torch.utils.flop_counter.",
        "",
        "## Load it",
        "",
        *load_instructions(stock_classes),
        "",
        f"## Removed units ({len(report['removed_units'])})",
        "",
        "| unit | kind | params | MACs | score |",
        "|---|---|---:|---:|---:|",
    ]
    for unit in report["units"]:
        if unit["removed"]:
            lines.append(
                f"| `{unit['name']}` | {unit['kind']} | {unit['params']:,} | {unit['macs']:,} | {unit['score']:.4g} |"
            )
    if chart_name:
        lines += ["", "## Scores", "", f"![unit scores]({chart_name})"]
    lines += [
        "",
        "Calibration: " + ", ".join(f"{k}={v}" for k, v in report["settings"]["calibration"].items() if k != "prompts"),
        "",
    ]
    path.write_text("\n".join(lines))
