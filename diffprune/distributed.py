"""The process group under `accelerate launch`, and the Accelerator for training, in one place.

accelerate only forms a CPU process group (gloo) when its state is created with cpu=True, and the state is a
singleton (the first construction wins), so every diffprune entry point asks here. The requested device
decides: a run asked to use the CPU (ACCELERATE_USE_CPU, `--device cpu`) stays on the CPU even where a GPU
is visible. A single process has no group to tear down, so its state is rebuilt when a later call asks
for another device or mixed precision (a CPU distillation after a GPU one in the same Python session).
"""

from __future__ import annotations

import os

import torch

from diffprune.errors import DiffpruneError


def use_cpu(device: str | torch.device | None = None) -> bool:
    """Whether processes run on the CPU: asked for (ACCELERATE_USE_CPU or a CPU `device`), or no GPU visible."""
    flag = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    asked_for_cpu = device is not None and torch.device(device).type == "cpu"
    return flag or asked_for_cpu or not torch.cuda.is_available()


def process_state(device: str | torch.device | None = None):
    """accelerate's PartialState; with `device`, one whose processes run there."""
    from accelerate import PartialState
    from accelerate.state import AcceleratorState

    existing = PartialState._shared_state
    if device is not None and existing:
        wants_cpu = use_cpu(device)
        if (existing["device"].type == "cpu") != wants_cpu:
            if existing.get("num_processes", 1) > 1:
                raise DiffpruneError(
                    f"the launched processes run on {existing['device'].type} but `device` {device} was asked for; "
                    "launch with the matching device (`accelerate launch --cpu` or ACCELERATE_USE_CPU=1 for the CPU)"
                )
            AcceleratorState._reset_state(reset_partial_state=True)
    return PartialState(cpu=use_cpu(device))


def is_main_process() -> bool:
    return process_state().is_main_process


def training_device(requested: str | torch.device) -> torch.device:
    """Where this process trains: the requested device; under a multi-GPU launch, this process's own GPU."""
    requested = torch.device(requested)
    state = process_state(requested)
    if requested.type == "cuda" and state.num_processes > 1:
        return state.device
    return requested


def accelerator_for(device: torch.device, mixed_precision: str):
    """An Accelerator for training on `device` with `mixed_precision` ("no", "bf16", "fp16"); the model is
    placed by the caller (device_placement=False), so a model on cuda:1 or on the CPU stays where it is."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = process_state(device)
    accelerator_state = AcceleratorState._shared_state
    if accelerator_state and accelerator_state.get("_mixed_precision") != mixed_precision and state.num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
        process_state(device)
    return Accelerator(mixed_precision=mixed_precision, cpu=use_cpu(device), device_placement=False)
