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

from diffprune.structure.hooks import TWO_STREAM_BLOCKS, Call, watch
from diffprune.structure.removal import RESIDUAL_BRANCH, TWO_STREAM_BRANCH
from diffprune.structure.units import Unit


class Gates:
    """Hooks (structure/hooks.py) that blend each unit's output with its bypass according to `values`."""

    def __init__(self, model: nn.Module, units: list[Unit], values: torch.Tensor | None = None):
        self.units = list(units)
        self.values = values if values is not None else torch.ones(len(self.units))
        learnable = self.values.requires_grad
        self._all_ones = None if learnable else [bool((value == 1).all()) for value in self.values.detach().cpu()]
        self._placed: dict[tuple, torch.Tensor] = {}  # fixed values on each (device, dtype) the model uses
        self._index = {unit.gate_path: index for index, unit in enumerate(self.units)}
        self._watching = watch(model, {unit.gate_path: _gated_form(unit) for unit in self.units}, self._gate)
        self._watching.__enter__()

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

    def _gate(self, path: str, call: Call):
        index = self._index[path]
        if self._all_ones is not None and self._all_ones[index]:
            return None  # the original, bit for bit
        outputs = call.outputs
        gate = self._gate_for(index, outputs[0])
        if call.gate_form in (RESIDUAL_BRANCH, TWO_STREAM_BRANCH):  # contributions to a residual: scaled
            return call.rebuild([gate * stream for stream in outputs])
        # Residual blocks, one stream or two: each stream blended with the block's input of that stream.
        return call.rebuild([_blend(x, y, gate) for x, y in zip(call.inputs, outputs, strict=True)])

    def remove(self) -> None:
        if self._watching is not None:
            self._watching.__exit__(None, None, None)
            self._watching = None


def _gated_form(unit: Unit) -> str:
    """A unit gated at another module (after a scale-invariant norm) is a contribution to a residual there."""
    return RESIDUAL_BRANCH if unit.gate_at and unit.gate_form not in TWO_STREAM_BLOCKS else unit.gate_form


def _blend(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """x + g (y - x): exactly x where g = 0 and exactly y where g = 1 unless g is being learnt."""
    gated = x + gate * (y - x)
    if not gate.requires_grad:
        gated = torch.where(gate == 0, x, torch.where(gate == 1, y, gated))
    return gated


@contextmanager
def gated(model: nn.Module, units: list[Unit], values: torch.Tensor | None = None):
    """`with gated(model, units, values) as gates:` runs the denoiser with gates; hooks are removed afterwards."""
    gates = Gates(model, units, values)
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
