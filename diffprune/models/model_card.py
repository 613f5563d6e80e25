"""Human-readable outputs of a pruning run: a model card (README.md) and a chart of the scores (PNG); written
into a saved folder by saved_folder.save_pruned_folder."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DENOISER = {"component": "unet", "class": "UNet2DConditionModel"}  # reports made before it was recorded


def write_score_chart(report: dict, path: Path) -> Path | None:
    """Horizontal bars of every scored unit, removed ones highlighted; None if matplotlib is missing."""
    try:
        # deferred: matplotlib is optional (the plots extra); without it there is no chart
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
    axes.set_xlabel(f"{report['settings']['criterion']} score (lower = safer to remove)")
    axes.set_title(f"Unit scores; red = removed ({report['budget']})")
    axes.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_model_card(report: dict, path: Path, chart_name: str | None = None, stock_classes: bool = False) -> None:
    """stock_classes: the folder's UNet is saved as a stock diffusers class (see models.saved_cuts.save_pipeline)."""
    before, after = report["totals_before"], report["totals_after"]
    denoiser = report.get("denoiser") or DEFAULT_DENOISER
    lines = [
        f"# Pruned {report['pipeline_class']}",
        "",
        f"Pruned from `{report['source']}` with diffprune {report['diffprune_version']}, criterion "
        f"`{report['settings']['criterion']}` {report['settings']['criterion_settings'] or ''}, budget: {report['budget']}, rounds: {report['settings']['rounds']}.",
        "",
        "| | before | after | kept |",
        "|---|---:|---:|---:|",
        f"| {denoiser['class']} parameters | {before['params']:,} | {after['params']:,} | {after['params'] / before['params']:.1%} |",
        f"| {denoiser['class']} MACs (one forward, batch 1) | {before['macs']:,} | {after['macs']:,} | {after['macs'] / before['macs']:.1%} |",
        "",
        "MACs are measured on the cut model with torch.utils.flop_counter.",
        "",
        "## Load it",
        "",
        *load_instructions(stock_classes, denoiser),
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


def load_instructions(stock_classes: bool, denoiser: dict | None = None) -> list[str]:
    """The model card's "Load it" lines (Markdown), for a folder saved by `save_pipeline`; `denoiser` is the
    report's {"component": "unet" or "transformer", "class": its class name}."""
    denoiser = denoiser or DEFAULT_DENOISER
    if stock_classes:
        return [
            "The removed units are expressed in a stock diffusers config, so stock diffusers loads it:",
            "",
            "```python",
            f"from diffusers import DiffusionPipeline, {denoiser['class']}",
            'pipe = DiffusionPipeline.from_pretrained("path/to/this/folder")',
            f'{denoiser["component"]} = {denoiser["class"]}.from_pretrained("path/to/this/folder", '
            f'subfolder="{denoiser["component"]}")',
            "```",
        ]
    component = denoiser["component"]
    what = "UNet" if component == "unet" else "transformer"
    return [
        f"The {what} ships its code (`{component}/diffprune.py`), so diffusers loads it without diffprune:",
        "",
        "```python",
        "from diffusers import AutoModel, DiffusionPipeline",
        'pipe = DiffusionPipeline.from_pretrained("path/to/this/folder", trust_remote_code=True)',
        f'{component} = AutoModel.from_pretrained("path/to/this/folder", subfolder="{component}", '
        "trust_remote_code=True)",
        "",
        "import diffprune  # or, with diffprune installed, without running the folder's code:",
        'pipe = diffprune.load_pipeline("path/to/this/folder")',
        "```",
        "",
        f"A stock {what} class refuses this folder with these instructions (it would build the full model).",
    ]


def write_removed_units_card(names: list[str], path: Path, stock_classes: bool) -> None:
    """The model card of a cut saved by hand (no pruning report): how it loads and the units its config names."""
    lines = [
        f"# Pruned UNet ({len(names)} units removed)",
        "",
        "## Load it",
        "",
        *load_instructions(stock_classes),
        "",
        "## Removed units",
        "",
        *(f"- `{name}`" for name in names),
        "",
    ]
    path.write_text("\n".join(lines))
