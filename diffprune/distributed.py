"""The process group under `accelerate launch`, and the Accelerator for training, in one place.

accelerate only forms a CPU process group (gloo) when its state is created with cpu=True, and the state is a
singleton (the first construction wins), so every diffprune entry point asks here. The requested device
decides: a run asked to use the CPU (ACCELERATE_USE_CPU, `--device cpu`) stays on the CPU even where a GPU
is visible. A single process has no group to tear down, so its state is rebuilt when a later call asks
for another device or mixed precision (a CPU distillation after a GPU one in the same Python session).

A group formed here is torn down before the process exits (`end_processes`): the CLI does it when a command
returns, and a script that calls the API gets it at interpreter exit (atexit, while the interpreter is still
whole). Left alive, gloo's worker threads still hold finished work (with tensors that Python owns) while the
interpreter shuts down; releasing it then takes the GIL from a dying interpreter, and the process is killed by
SIGABRT ("terminate called without an active exception") after all its work is done (pytorch/pytorch#190489,
#179291). The issue saw it in about one launch in ten; docs/results.md, "Multi-process runs end cleanly", has
the counts.
"""

from __future__ import annotations

import atexit
import os
import sys

import torch
import torch.distributed

from diffprune.errors import DiffpruneError

# accelerate is imported inside the functions that use it: the CLI imports this module for every command,
# `--help` included, which needs no accelerate.


def use_cpu(device: str | torch.device | None = None) -> bool:
    """Whether processes run on the CPU: asked for (ACCELERATE_USE_CPU or a CPU `device`), or no GPU visible."""
    flag = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    asked_for_cpu = device is not None and torch.device(device).type == "cpu"
    return flag or asked_for_cpu or not torch.cuda.is_available()


def process_state(device: str | torch.device | None = None):
    """accelerate's PartialState; with `device`, one whose processes run there."""
    # deferred here and below: the CLI imports this module, and `diffprune --help` must not load accelerate
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
    state = PartialState(cpu=use_cpu(device))
    global _teardown_registered
    if state.num_processes > 1 and not _teardown_registered:
        atexit.register(_end_processes_at_exit)
        _teardown_registered = True
    return state


_teardown_registered = False


def end_processes(finished: bool = True) -> None:
    """Tear down the process group formed under `accelerate launch`; nothing to do for a single process.

    finished: this process completed its work. It waits for every other process (a barrier), so none leaves
    while another still talks to it, then the group is destroyed; a later call forms a new one. A process that
    failed leaves the group alone: the others may be blocked in a collective it will never join, and destroying
    a group under a pending collective can hang (pytorch/torchtitan#1342); it exits with its error, and the
    launcher stops the others."""
    if not finished or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    from accelerate import PartialState
    from accelerate.state import AcceleratorState

    state = PartialState()
    state.wait_for_everyone()
    if hasattr(state, "destroy_process_group"):  # accelerate >= 1.1 (it skips processes it forked itself)
        state.destroy_process_group()
    else:
        torch.distributed.destroy_process_group()
    AcceleratorState._reset_state(reset_partial_state=True)


def _end_processes_at_exit() -> None:
    # An uncaught exception leaves sys.last_value (3.12: sys.last_exc) behind before atexit handlers run.
    failed = getattr(sys, "last_value", None) is not None or getattr(sys, "last_exc", None) is not None
    end_processes(finished=not failed)


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
