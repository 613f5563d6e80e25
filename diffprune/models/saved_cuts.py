"""The Pruned* classes (defined in removal.py) and how a cut is saved and loaded so that it loads plainly.

How a saved pipeline folder loads (diffusers 0.42 resolves a model_index.json entry [library, class] to the
file `<component>/<library>.py` when it exists, and needs trust_remote_code=True to run it):

* removed set expressible in a stock config (a whole mid block, all attention of a block): the UNet is saved
  as the stock class (export.py), so plain `from_pretrained` of any kind loads it exactly, with no flag;
* a diffusion transformer cut by depth alone is its stock class with fewer blocks (transformer_depth.py);
* otherwise the denoiser is saved as ["diffprune", "Pruned..."] with `unet/diffprune.py` (or
  `transformer/diffprune.py`; a copy of removal.py), an `auto_map` for AutoModel, and an entry that makes stock
  classes fail with loading instructions instead of silently building the full model. diffprune's own loader
  passes the denoiser built by its classes, so it never runs a folder's copy of the code.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import DiffusionPipeline

from diffprune.errors import DiffpruneError
from diffprune.families import family_of
from diffprune.models.components import class_names, with_denoiser
from diffprune.structure import removal
from diffprune.structure.denoiser import DENOISER_COMPONENTS, denoiser_of
from diffprune.structure.export import export_plain
from diffprune.structure.removal import LOAD_HINT, MODULE_NAME


def removed_unit_names(denoiser) -> list[str]:
    return list((denoiser.config.get("removed_units") or {}).keys())


def in_saved_form(pipeline):
    """The pipeline as it is saved: with a stock denoiser class where a stock config expresses the cut (its family
    says: structure/export.py), else unchanged."""
    denoiser = denoiser_of(pipeline)
    if not removed_unit_names(denoiser) or isinstance(family_of(denoiser).stock_config(denoiser), str):
        return pipeline
    return with_denoiser(pipeline, export_plain(denoiser))


def save_pipeline(pipeline, folder: Path) -> bool:
    """save_pretrained in the form that loads most plainly (see the module docstring); True if every component
    is a stock class."""
    saved = in_saved_form(pipeline)
    saved.save_pretrained(folder, safe_serialization=True)
    index_path = Path(folder) / "model_index.json"
    index = json.loads(index_path.read_text())
    if class_names(saved):  # DiTPipeline does not save its class names; its from_pretrained reads them here
        index["id2label"] = class_names(saved)
    stock = not removed_unit_names(denoiser_of(saved))
    if not stock:
        # AutoModel.from_pretrained(folder, subfolder="unet", trust_remote_code=True) reads model_index.json, not
        # unet/config.json, to decide whether the folder has code (diffusers 0.42 auto_model.py).
        index["auto_map"] = {"AutoModel": f"{MODULE_NAME}.{type(denoiser_of(saved)).__name__}"}
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return stock


def pruned_components(location: str, torch_dtype=None) -> dict:
    """{"unet" or "transformer": the cut, built by diffprune's own class} when `location`'s model_index.json names
    a diffprune class, else {}: passed to DiffusionPipeline.from_pretrained, it loads without running the
    folder's code."""
    index = DiffusionPipeline.load_config(location)
    components = {}
    for component in DENOISER_COMPONENTS:
        entry = index.get(component)
        if not entry or entry[0] != MODULE_NAME:
            continue
        cls = getattr(removal, entry[1], None)
        if cls is None:
            raise DiffpruneError(f"{location} names an unknown diffprune class {entry[1]}; {LOAD_HINT}")
        components[component] = cls.from_pretrained(location, subfolder=component, torch_dtype=torch_dtype)
    return components
