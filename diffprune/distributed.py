"""The process group under `accelerate launch`, in one place.

accelerate only forms a CPU process group (gloo) when its state is created with cpu=True, and the state is a
singleton (the first construction wins), so every diffprune entry point asks here.
"""

from __future__ import annotations

import os

import torch


def use_cpu() -> bool:
    flag = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return flag or not torch.cuda.is_available()


def process_state():
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


def is_main_process() -> bool:
    return process_state().is_main_process
