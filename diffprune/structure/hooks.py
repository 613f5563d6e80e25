"""The one hook mechanism behind gates, feature capture and shape probes: a unit's call seen as streams.

A unit's call carries one stream (hidden states in, hidden states out) or two (image tokens and text tokens: a
two-stream block takes `hidden_states` and `encoder_hidden_states` and returns both, in the order its gate form
says; a joint attention returns one output per stream). `watch(model, {path: gate form}, callback)` registers
one forward hook per path; the hook hands `callback(path, call)` a `Call`, whose `inputs` and `outputs` are the
streams image first, and `rebuild(streams)` puts new output streams back in the container the module returned.
When the callback returns something other than None, it replaces the module's output. A None gate form means
"unknown" (shape probes): the main input and output tensors, and how many tensors the module returned.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from functools import cache

import torch
from torch import nn

from diffprune.structure.removal import (
    RESIDUAL_BLOCK,
    RESIDUAL_BRANCH,
    TWO_STREAM_BLOCK,
    TWO_STREAM_BLOCK_IMAGE_FIRST,
    TWO_STREAM_BRANCH,
)
from diffprune.tensors import first_tensor, output_tensor, replace_output_tensor

TWO_STREAM_BLOCKS = (TWO_STREAM_BLOCK, TWO_STREAM_BLOCK_IMAGE_FIRST)


@cache
def _signature(cls: type) -> inspect.Signature | None:
    try:
        return inspect.signature(cls.forward)
    except (TypeError, ValueError):
        return None


def named_arguments(module: nn.Module, args: tuple, kwargs: dict) -> dict:
    """The call's arguments by parameter name (positional ones included), {} where the signature cannot bind."""
    signature = _signature(type(module))
    if signature is None:
        return {}
    try:
        bound = signature.bind_partial(module, *args, **kwargs)
    except TypeError:
        return {}
    return dict(bound.arguments)


class Call:
    """One call of a watched module, as streams (image first)."""

    def __init__(self, module: nn.Module, args: tuple, kwargs: dict, output, gate_form: str | None):
        self.module, self.args, self.kwargs, self.output, self.gate_form = module, args, kwargs, output, gate_form

    @property
    def inputs(self) -> list[torch.Tensor | None]:
        named = named_arguments(self.module, self.args, self.kwargs)
        hidden = named.get("hidden_states")
        if not isinstance(hidden, torch.Tensor):
            hidden = first_tensor(self.args, self.kwargs)
        if self.gate_form in TWO_STREAM_BLOCKS or self.gate_form == TWO_STREAM_BRANCH:
            return [hidden, named.get("encoder_hidden_states")]
        return [hidden]

    @property
    def outputs(self) -> list[torch.Tensor]:
        output = self.output
        if self.gate_form == TWO_STREAM_BLOCK:  # (text, image)
            return [output[1], output[0]]
        if self.gate_form in (TWO_STREAM_BLOCK_IMAGE_FIRST, TWO_STREAM_BRANCH):
            return [stream for stream in output if isinstance(stream, torch.Tensor)]
        return [output_tensor(output)]

    @property
    def returned_tensors(self) -> int:
        """How many tensors the module returned (a joint attention returns one per stream)."""
        if isinstance(self.output, tuple):
            return sum(isinstance(item, torch.Tensor) for item in self.output)
        return 1

    def rebuild(self, streams: list[torch.Tensor]):
        """The module's output container holding `streams` (image first) instead."""
        if self.gate_form == TWO_STREAM_BLOCK:
            return streams[1], streams[0]
        if self.gate_form == TWO_STREAM_BLOCK_IMAGE_FIRST:
            return streams[0], streams[1]
        if self.gate_form == TWO_STREAM_BRANCH:
            replaced = iter(streams)
            return tuple(next(replaced) if isinstance(item, torch.Tensor) else item for item in self.output)
        return replace_output_tensor(self.output, streams[0])


@contextmanager
def watch(model: nn.Module, targets: dict[str, str | None], callback):
    """Within the block, every call of a module named in `targets` ({path: gate form or None}) goes through
    `callback(path, call)`; a non-None return value replaces the module's output."""
    handles = []
    try:
        for path, gate_form in targets.items():

            def hook(module, args, kwargs, output, path=path, gate_form=gate_form):
                return callback(path, Call(module, args, kwargs, output, gate_form))

            handles.append(model.get_submodule(path).register_forward_hook(hook, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


GATE_FORMS = (RESIDUAL_BLOCK, RESIDUAL_BRANCH, TWO_STREAM_BLOCK, TWO_STREAM_BLOCK_IMAGE_FIRST, TWO_STREAM_BRANCH)
