"""Where tensors live and in what precision: the one device and dtype policy of every entry point.

* Device: `--device` / `device=` when given, else CUDA when torch sees a GPU, else the CPU (`resolve_device`).
  prune, distill, eval, compare and demo all ask here, so they agree.
* Precision names: fp32, bf16, fp16 (`torch_dtype`). fp16 is refused on a CPU: PyTorch's CPU kernels for it
  are missing or slow, and bf16 gives the same memory saving there.
* Every tensor the library makes for a model (example inputs, conditioning, noise, timesteps, batches) is
  drawn on the CPU where a seed must give the same values on every device, then put on the model's device
  and dtype by `place(value, model)`: floating tensors take the model's dtype, integer tensors keep theirs.
  A model that lives on CUDA or in bf16 therefore works with every function that builds inputs for it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from diffprune.errors import DiffpruneError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(requested: str | torch.device | None = None) -> str:
    """The device to run on: `requested`, else the default; a device torch cannot use is a one-line error."""
    if requested is None:
        return default_device()
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise DiffpruneError(f"`device` {requested!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DiffpruneError(f"`device` {requested} was asked for, but torch sees no CUDA GPU; use `device` cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DiffpruneError(
                f"`device` {requested}: torch sees {torch.cuda.device_count()} CUDA GPU(s); use cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
            )
    elif device.type != "cpu":
        raise DiffpruneError(f"`device` {requested}: diffprune runs on cpu or cuda")
    return str(device)


def torch_dtype(name: str | torch.dtype | None, device: str | torch.device = "cpu") -> torch.dtype | None:
    """fp32 / bf16 / fp16 (or a torch dtype) for `device`; None stays None (keep the model's own dtype)."""
    if name is None:
        return None
    if isinstance(name, torch.dtype):
        name = dtype_name(name)
    if name not in DTYPES:
        raise DiffpruneError(f"unknown `dtype` {name!r}; choose one of {', '.join(DTYPES)}")
    if name == "fp16" and torch.device(device).type == "cpu":
        raise DiffpruneError("fp16 needs a GPU (`device` cuda); on a CPU use `dtype` fp32 or bf16")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """fp32 / bf16 / fp16 for a torch dtype (the names the command line uses)."""
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise DiffpruneError(f"dtype {dtype} is not supported; choose one of {', '.join(DTYPES)}")


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype


def placement_of(model: torch.nn.Module) -> Placement:
    """Device and floating dtype of a model's weights (CPU fp32 for a model without floating weights)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return Placement(tensor.device, tensor.dtype)
    return Placement(torch.device("cpu"), torch.float32)


def place(value, target: torch.nn.Module | Placement):
    """`value` (a tensor, or dicts / lists / tuples of them) on the target's device; floating tensors also in
    its dtype, integer tensors keep theirs. Tensors already there are returned as they are."""
    placement = target if isinstance(target, Placement) else placement_of(target)

    def move(item):
        if isinstance(item, torch.Tensor):
            dtype = placement.dtype if item.is_floating_point() else None
            return item.to(device=placement.device, dtype=dtype)
        if isinstance(item, dict):
            return {key: move(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return type(item)(move(inner) for inner in item)
        return item

    return move(value)


def converted_copy(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A deep copy of `module` with floating weights in `dtype`; the original is untouched.

    The converted tensors are handed to deepcopy as already-copied, so the copy never holds a second
    full-precision set of weights (an fp32 SD UNet converted to bf16 costs 1.7 GB, not 3.4 + 1.7).
    """
    memo = {}
    for parameter in module.parameters():
        if parameter.is_floating_point():
            converted = torch.nn.Parameter(parameter.detach().to(dtype), requires_grad=parameter.requires_grad)
            memo[id(parameter)] = converted
    for buffer in module.buffers():
        if buffer.is_floating_point():
            memo[id(buffer)] = buffer.detach().to(dtype)
    return copy.deepcopy(module, memo)
