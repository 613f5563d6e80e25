"""A LoRA made for the original model, adapted to a cut: keys of surviving modules unchanged, keys of removed
units dropped (and reported by unit).

UNet cuts keep every surviving module's name (surgery replaces modules in place; the stock form of a cut keeps
the names of the modules it keeps), so adapting is filtering. The result is a diffusers-format LoRA file that
the pruned pipeline's own `load_lora_weights` loads.

    adapted = diffprune.adapt_lora("lora.safetensors", "sd-pruned")
    adapted.save("lora-pruned.safetensors")          # or: pipe.load_lora_weights(adapted.state_dict)
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
from accelerate import init_empty_weights
from safetensors.torch import save_file

from diffprune.errors import DiffpruneError
from diffprune.models.saved_cuts import removed_unit_names
from diffprune.models.saved_folder import REPORT_FILE
from diffprune.structure import removal

logger = logging.getLogger(__name__)

# Where a diffusers/peft LoRA key stops naming the adapted module: "<module>.lora_A.weight", "<module>.lora.up.weight".
_LORA_SUFFIX = re.compile(
    r"\.(lora_A|lora_B|lora\.down|lora\.up|lora_magnitude_vector|lora_embedding_A|lora_embedding_B)\b"
)
METADATA_KEY = "lora_adapter_metadata"  # where diffusers keeps the adapter config (rank, alpha, targets)


@dataclass
class AdaptedLora:
    state_dict: dict
    metadata: dict | None
    kept: int
    dropped: dict[str, list[str]] = field(default_factory=dict)  # removed unit -> keys of the LoRA dropped for it

    @property
    def dropped_count(self) -> int:
        return sum(len(keys) for keys in self.dropped.values())

    def describe(self) -> str:
        if not self.dropped:
            return f"kept all {self.kept} LoRA keys; none belonged to a removed unit"
        units = ", ".join(f"{unit} ({len(keys)})" for unit, keys in self.dropped.items())
        return f"kept {self.kept} LoRA keys, dropped {self.dropped_count} of removed units: {units}"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        metadata = {"format": "pt"}
        if self.metadata:
            metadata[METADATA_KEY] = json.dumps(self.metadata, indent=2, sort_keys=True)
        save_file({key: value.contiguous() for key, value in self.state_dict.items()}, str(path), metadata=metadata)
        return path


def adapt_lora(lora, pruned) -> AdaptedLora:
    """`lora`: a LoRA file (or folder diffusers can read one from, or a state dict) made for the original model;
    `pruned`: the pruned pipeline (object or saved folder). Logs how many keys were dropped and for which units."""
    unet, removed, pipeline_class = _pruned_unet(pruned)
    state_dict, metadata = _read_lora(lora, pipeline_class)
    unet_prefix = f"{getattr(pipeline_class, 'unet_name', 'unet')}."
    modules = {name for name, module in unet.named_modules() if type(module).__name__ not in ("Bypass", "ZeroBranch")}
    kept, dropped, foreign = {}, {}, []
    for key, value in state_dict.items():
        module = _adapted_module(key, unet_prefix)
        if module is None or module in modules:
            kept[key] = value  # other components' keys (text encoder) and surviving modules apply unchanged
            continue
        unit = next((name for name in removed if module == name or module.startswith(name + ".")), None)
        if unit is None:
            foreign.append(key)
        else:
            dropped.setdefault(unit, []).append(key)
    if foreign:
        raise DiffpruneError(
            f"{len(foreign)} keys of the LoRA target UNet modules the original model does not have either "
            f"(e.g. {foreign[0]}); pass a LoRA made for the model this cut came from"
        )
    adapted = AdaptedLora(kept, _without_removed_targets(metadata, removed), len(kept), dropped)
    logger.warning("diffprune: %s", adapted.describe())
    return adapted


def _adapted_module(key: str, unet_prefix: str) -> str | None:
    if not key.startswith(unet_prefix):
        return None
    match = _LORA_SUFFIX.search(key)
    return key[len(unet_prefix) : match.start()] if match else None


def _pruned_unet(pruned):
    """(UNet, removed unit names, pipeline class) of a pruned pipeline object or folder; a folder's UNet is built
    on the meta device: only its module names are needed."""
    if not isinstance(pruned, (str, Path)):
        # A PruneResult names its units; a pipeline holding a Pruned* UNet has them in its config.
        pipeline = getattr(pruned, "pipeline", pruned)
        return (
            pipeline.unet,
            list(getattr(pruned, "removed", None) or removed_unit_names(pipeline.unet)),
            type(pipeline),
        )
    folder = Path(pruned)
    if not (folder / "model_index.json").is_file():
        raise DiffpruneError(
            f"{folder} is not a pruned pipeline folder (no model_index.json); pass the folder `diffprune prune` wrote"
        )

    index = json.loads((folder / "model_index.json").read_text())
    class_name = (index.get("unet") or [None, None])[1] or ""
    unet_class = (
        getattr(removal, class_name, None)
        if class_name.startswith(removal.PRUNED_PREFIX)
        else removal.base_class_named(class_name)
    )
    if unet_class is None:
        raise DiffpruneError(
            f"{folder} has no UNet diffprune can read ({index.get('unet')}); pass a pruned UNet pipeline folder"
        )
    config = unet_class.load_config(folder / "unet")
    with init_empty_weights():
        unet = unet_class.from_config(config)
    removed = removed_unit_names(unet)
    if not removed and (folder / REPORT_FILE).is_file():  # saved with stock classes: the report names the units
        removed = json.loads((folder / REPORT_FILE).read_text()).get("removed_units", [])
    return unet, removed, getattr(diffusers, index.get("_class_name", ""), None)


def _read_lora(lora, pipeline_class) -> tuple[dict, dict | None]:
    if pipeline_class is None or not hasattr(pipeline_class, "lora_state_dict"):
        name = getattr(pipeline_class, "__name__", "this pipeline")
        raise DiffpruneError(
            f"{name} does not load LoRAs in diffusers; LoRA adaptation needs a pipeline with load_lora_weights"
        )
    if isinstance(lora, (str, Path)) and not Path(lora).exists():
        raise DiffpruneError(f"no such LoRA file: {lora}")
    try:
        state_dict, network_alphas, metadata = pipeline_class.lora_state_dict(
            str(lora) if isinstance(lora, Path) else lora, return_lora_metadata=True
        )
    except (OSError, ValueError, KeyError) as error:
        raise DiffpruneError(f"could not read a LoRA from {lora}: {str(error).strip().splitlines()[0]}") from None
    if not state_dict or not any(_LORA_SUFFIX.search(key) for key in state_dict):
        raise DiffpruneError(f"{lora} holds no LoRA weights (no lora_A/lora_B or lora.down/lora.up keys)")
    if network_alphas:
        raise DiffpruneError(
            f"{lora} is a non-diffusers (kohya-style) LoRA, not supported yet; load it into the original pipeline "
            "with load_lora_weights and save it with save_lora_weights, then adapt that file"
        )
    return state_dict, metadata


def _without_removed_targets(metadata: dict | None, removed: list[str]) -> dict | None:
    """The adapter config minus module paths under removed units (peft would look for them)."""
    if not metadata:
        return metadata

    def survives(target: str) -> bool:
        return not any(target == unit or target.startswith(unit + ".") for unit in removed)

    cleaned = {}
    for key, value in metadata.items():
        if key.endswith("target_modules") and isinstance(value, (list, tuple)):
            value = [target for target in value if survives(target)]
        elif key.endswith(("rank_pattern", "alpha_pattern")) and isinstance(value, dict):
            value = {target: entry for target, entry in value.items() if survives(target)}
        cleaned[key] = value
    return cleaned
