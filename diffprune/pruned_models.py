"""The Pruned* classes (defined in removal.py) and how a cut is saved and loaded so that it loads plainly.

How a saved pipeline folder loads (diffusers 0.42 resolves a model_index.json entry [library, class] to the
file `<component>/<library>.py` when it exists, and needs trust_remote_code=True to run it):

* removed set expressible in a stock config (a whole mid block, all attention of a block): the UNet is saved
  as the stock class (export.py), so plain `from_pretrained` of any kind loads it exactly, with no flag;
* otherwise the UNet is saved as ["diffprune", "Pruned..."] with `unet/diffprune.py` (a copy of removal.py),
  an `auto_map` for AutoModel, and an entry that makes stock classes fail with loading instructions instead of
  silently building the full model. diffprune's own loader passes the UNet built by its classes, so it never
  runs a folder's copy of the code.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import UNet2DConditionModel, UNet2DModel
from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

from .errors import DiffpruneError
from .removal import (
    LOAD_HINT,
    MODULE_NAME,
    PrunedAudioLDM2UNet2DConditionModel,
    PrunedUNet2DConditionModel,
    PrunedUNet2DModel,
)

PRUNED_CLASSES = {
    UNet2DConditionModel: PrunedUNet2DConditionModel,
    UNet2DModel: PrunedUNet2DModel,
    AudioLDM2UNet2DConditionModel: PrunedAudioLDM2UNet2DConditionModel,
}
REPORT_FILE = "pruning_report.json"
MODEL_CARD_FILE = "README.md"


def pruned_class_for(cls: type) -> type:
    for base, pruned in PRUNED_CLASSES.items():
        # A cut loaded with trust_remote_code is an instance of the folder's copy of the same class.
        if cls is base or cls is pruned or (cls.__name__ == pruned.__name__ and issubclass(cls, base)):
            return pruned
    supported = ", ".join(base.__name__ for base in PRUNED_CLASSES)
    raise DiffpruneError(f"cannot prune a {cls.__name__}; supported UNet classes: {supported}")


def removed_unit_names(unet) -> list[str]:
    return list((unet.config.get("removed_units") or {}).keys())


def in_saved_form(pipeline):
    """The pipeline as it is saved: with a stock UNet where a stock config expresses the cut, else unchanged."""
    from .export import PLAIN_CLASSES, export_plain, plain_config
    from .loading import with_unet

    # AudioLDM2's UNet has no stock class diffusers could load by that config alone.
    if not removed_unit_names(pipeline.unet) or type(pipeline.unet).__name__ not in PLAIN_CLASSES:
        return pipeline
    try:
        plain_config(pipeline.unet)
    except DiffpruneError:
        return pipeline
    return with_unet(pipeline, export_plain(pipeline.unet))


def save_pipeline(pipeline, folder: Path) -> bool:
    """save_pretrained in the form that loads most plainly (see the module docstring); True if every component
    is a stock class."""
    saved = in_saved_form(pipeline)
    saved.save_pretrained(folder, safe_serialization=True)
    if not removed_unit_names(saved.unet):
        return True
    # AutoModel.from_pretrained(folder, subfolder="unet", trust_remote_code=True) reads model_index.json, not
    # unet/config.json, to decide whether the folder has code (diffusers 0.42 auto_model.py).
    index_path = Path(folder) / "model_index.json"
    index = json.loads(index_path.read_text())
    index["auto_map"] = {"AutoModel": f"{MODULE_NAME}.{type(saved.unet).__name__}"}
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return False


def load_instructions(stock_classes: bool) -> list[str]:
    """The model card's "Load it" lines (Markdown), for a folder saved by `save_pipeline`."""
    if stock_classes:
        return [
            "The removed units are expressed in a stock diffusers config, so stock diffusers loads it:",
            "",
            "```python",
            "from diffusers import DiffusionPipeline, UNet2DConditionModel",
            'pipe = DiffusionPipeline.from_pretrained("path/to/this/folder")',
            'unet = UNet2DConditionModel.from_pretrained("path/to/this/folder", subfolder="unet")',
            "```",
        ]
    return [
        "The UNet ships its code (`unet/diffprune.py`), so diffusers loads it without diffprune:",
        "",
        "```python",
        "from diffusers import AutoModel, DiffusionPipeline",
        'pipe = DiffusionPipeline.from_pretrained("path/to/this/folder", trust_remote_code=True)',
        'unet = AutoModel.from_pretrained("path/to/this/folder", subfolder="unet", trust_remote_code=True)',
        "",
        "import diffprune  # or, with diffprune installed, without running the folder's code:",
        'pipe = diffprune.load_pipeline("path/to/this/folder")',
        "```",
        "",
        "A stock UNet class refuses this folder with these instructions (it would build the full model).",
    ]


def pruned_components(location: str, torch_dtype=None) -> dict:
    """{"unet": the cut, built by diffprune's own class} when `location`'s model_index.json names a diffprune
    class, else {}: passed to DiffusionPipeline.from_pretrained, it loads without running the folder's code."""
    from diffusers import DiffusionPipeline

    entry = DiffusionPipeline.load_config(location).get("unet")
    if not entry or entry[0] != MODULE_NAME:
        return {}
    classes = {cls.__name__: cls for cls in PRUNED_CLASSES.values()}
    if entry[1] not in classes:
        raise DiffpruneError(f"{location} names an unknown diffprune class {entry[1]}; {LOAD_HINT}")
    return {"unet": classes[entry[1]].from_pretrained(location, subfolder="unet", torch_dtype=torch_dtype)}


def write_removed_units_record(source: str | Path, pruned_unet, folder: Path, stock_classes: bool) -> None:
    """Keep the plain-words list of removed units when a command rewrites a pruned folder (distill, export): the
    source's pruning_report.json and score chart with a model card that says how this folder loads, or, for a
    cut saved by hand (no report), a report and card made from its config."""
    from .reports import write_model_card

    source = Path(source)
    if (source / REPORT_FILE).is_file():
        report = json.loads((source / REPORT_FILE).read_text())
        (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        chart = source / "scores.png"
        if chart.is_file():
            (folder / chart.name).write_bytes(chart.read_bytes())
        write_model_card(
            report,
            folder / MODEL_CARD_FILE,
            chart_name=chart.name if chart.is_file() else None,
            stock_classes=stock_classes,
        )
        return
    names = removed_unit_names(pruned_unet)
    if not names:
        return
    (folder / REPORT_FILE).write_text(json.dumps({"removed_units": names}, indent=2) + "\n")
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
    (folder / MODEL_CARD_FILE).write_text("\n".join(lines))
