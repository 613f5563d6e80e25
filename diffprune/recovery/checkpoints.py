"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

Holds the student's weights, the EMA weights, AdamW's per-parameter state and the step, so an interrupted
distillation resumes to the same step count. Written into a staging folder and renamed, so a checkpoint
is complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _optimizer_tensors(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for parameter_id, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{parameter_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{parameter_id}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(
    folder: Path, step: int, model, optimizer, ema_state: dict[str, torch.Tensor] | None, extra: dict
) -> None:
    folder = Path(folder)
    staging = folder.with_name(folder.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, staging / "model.safetensors")
    tensors, optimizer_meta = _optimizer_tensors(optimizer)
    if tensors:
        save_file(tensors, staging / "optimizer.safetensors")
    if ema_state is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema_state.items()}, staging / "ema.safetensors")
    (staging / "state.json").write_text(json.dumps({"step": step, "optimizer": optimizer_meta, **extra}, indent=2))
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, folder)


def load_checkpoint(folder: Path, model, optimizer) -> tuple[int, dict[str, torch.Tensor] | None, dict]:
    """Restore model and optimizer in place; returns (step, EMA weights or None, the saved extra fields)."""
    folder = Path(folder)
    state = json.loads((folder / "state.json").read_text())
    model.load_state_dict(load_file(folder / "model.safetensors"))
    optimizer_state = {"state": {}, "param_groups": state["optimizer"]["param_groups"]}
    tensors = load_file(folder / "optimizer.safetensors") if (folder / "optimizer.safetensors").exists() else {}
    for key, value in list(tensors.items()) + list(state["optimizer"]["scalars"].items()):
        parameter_id, name = key.split(".", 1)
        optimizer_state["state"].setdefault(int(parameter_id), {})[name] = value
    optimizer.load_state_dict(optimizer_state)
    ema = load_file(folder / "ema.safetensors") if (folder / "ema.safetensors").exists() else None
    extra = {k: v for k, v in state.items() if k not in ("step", "optimizer")}
    return state["step"], ema, extra
