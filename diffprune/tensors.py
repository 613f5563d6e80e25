"""Finding the main tensor in a module's arguments and output, and putting a replacement back.

diffusers modules return plain tensors, tuples (`return_dict=False`) or BaseOutput dataclasses; gates and
shape probes need "the hidden states in, the hidden states out" regardless of which.
"""

from __future__ import annotations

import dataclasses

import torch


def first_tensor(args: tuple, kwargs: dict) -> torch.Tensor | None:
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value
    return None


def output_tensor(output) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if dataclasses.is_dataclass(output):
        values = list(output.values()) if hasattr(output, "values") else []
        if values and isinstance(values[0], torch.Tensor):
            return values[0]
    return None


def replace_output_tensor(output, tensor: torch.Tensor):
    """The same container as `output` with its main tensor swapped for `tensor`."""
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, tuple):
        return (tensor,) + tuple(output[1:])
    if isinstance(output, list):
        return [tensor] + list(output[1:])
    first_field = dataclasses.fields(output)[0].name
    return dataclasses.replace(output, **{first_field: tensor})
