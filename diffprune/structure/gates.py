"""Gates: the one mechanism for virtual removal of units.

For a residual block unit mapping x to f(x):  y = x + g (f(x) - x).
For a sub-layer whose parent adds its output to a residual:  y = g f(x).
For a two-stream block (SD3, FLUX) each stream is blended as a residual block; a joint attention that returns
one output per stream has each output scaled, y_i = g f_i(x).
g = 1 is the original (returned bit-for-bit), g = 0 is removal (bit-for-bit x, or exact zeros).

Gate values live in one tensor of shape [num_units] (a scalar per unit) or [num_units, variants] (a value per
sample: several variants of the model in one batch). When a module sees a batch that is a multiple of the
number of variants, the gate vector is tiled, which is what classifier-free guidance needs: the pipeline
concatenates [unconditional, conditional] halves, and variant j governs sample j of both halves.
The values may be a learnable parameter (soft masks).

Values may live anywhere (callers build them on the CPU); each module's gate is taken to the device and dtype
of the tensor it blends. Fixed values are copied to a device once per (device, dtype), not once per module
call, and "is this gate all ones" is answered from the CPU copy, so a CUDA model is not synchronised per unit.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from diffprune.structure.units import RESIDUAL_BRANCH, TWO_STREAM_BLOCK, TWO_STREAM_BRANCH, Unit
from diffprune.tensors import first_tensor, output_tensor, replace_output_tensor


class Gates:
    """Forward hooks that blend each unit's output with its bypass according to `values`."""

    def __init__(self, unet: nn.Module, units: list[Unit], values: torch.Tensor | None = None):
        self.units = list(units)
        self.values = values if values is not None else torch.ones(len(self.units))
        learnable = self.values.requires_grad
        self._all_ones = None if learnable else [bool((value == 1).all()) for value in self.values.detach().cpu()]
        self._placed: dict[tuple, torch.Tensor] = {}  # fixed values on each (device, dtype) the model uses
        modules = dict(unet.named_modules())
        self._handles = [
            modules[unit.name].register_forward_hook(self._hook(index, unit.gate_form), with_kwargs=True)
            for index, unit in enumerate(self.units)
        ]

    def _values_like(self, like: torch.Tensor) -> torch.Tensor:
        if self._all_ones is None:  # learnable: a differentiable copy on every call
            return self.values.to(dtype=like.dtype, device=like.device)
        key = (like.device, like.dtype)
        if key not in self._placed:
            self._placed[key] = self.values.to(dtype=like.dtype, device=like.device)
        return self._placed[key]

    def _gate_for(self, index: int, like: torch.Tensor) -> torch.Tensor:
        gate = self._values_like(like)[index]
        if gate.ndim == 1:  # one value per variant; tile over batch halves (classifier-free guidance)
            repeats, remainder = divmod(like.shape[0], gate.shape[0])
            if remainder:
                raise ValueError(f"batch of {like.shape[0]} is not a multiple of the {gate.shape[0]} gate variants")
            gate = gate.repeat(repeats).view(-1, *([1] * (like.ndim - 1)))
        return gate

    def _hook(self, index: int, gate_form: str):
        def hook(module, args, kwargs, output):
            if self._all_ones is not None and self._all_ones[index]:
                return output  # the original, bit for bit
            if gate_form == TWO_STREAM_BLOCK:  # returns (text stream, image stream), each a residual block
                hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
                encoder = kwargs["encoder_hidden_states"] if "encoder_hidden_states" in kwargs else args[1]
                gate = self._gate_for(index, hidden)
                return _blend(encoder, output[0], gate), _blend(hidden, output[1], gate)
            if gate_form == TWO_STREAM_BRANCH:  # (image output, text output[, ...]): every stream scaled
                gate = self._gate_for(index, output[0])
                return tuple(gate * stream if isinstance(stream, torch.Tensor) else stream for stream in output)
            y = output_tensor(output)
            gate = self._gate_for(index, y)
            if gate_form == RESIDUAL_BRANCH:
                gated = gate * y
            else:
                gated = _blend(first_tensor(args, kwargs), y, gate)
            return replace_output_tensor(output, gated)

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _blend(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """x + g (y - x): exactly x where g = 0 and exactly y where g = 1 unless g is being learnt."""
    gated = x + gate * (y - x)
    if not gate.requires_grad:
        gated = torch.where(gate == 0, x, torch.where(gate == 1, y, gated))
    return gated


@contextmanager
def gated(unet: nn.Module, units: list[Unit], values: torch.Tensor | None = None):
    """`with gated(unet, units, values) as gates:` runs the UNet with gates; hooks are removed afterwards."""
    gates = Gates(unet, units, values)
    try:
        yield gates
    finally:
        gates.remove()


def removal_values(units: list[Unit], removed_names) -> torch.Tensor:
    """Gate values that remove exactly `removed_names` (0) and keep every other unit (1)."""
    removed = set(removed_names)
    return torch.tensor([0.0 if unit.name in removed else 1.0 for unit in units])


def variant_values(units: list[Unit], variants: list[set[str]]) -> torch.Tensor:
    """Gate values [num_units, num_variants]: variant j removes the units named in variants[j]."""
    return torch.stack([removal_values(units, names) for names in variants], dim=1)
