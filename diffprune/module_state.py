"""Leaving callers' modules as they were: `preserved(*modules)` restores, on exit, the device of each module
that sat on one device, the train/eval mode of every submodule and the requires_grad flag of every parameter,
so library code may move, freeze or switch modes freely without changing the pipeline a user passed in."""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager

from torch import nn


def pipeline_modules(*pipelines) -> list[nn.Module]:
    """The torch modules among the pipelines' components (UNet, VAE, text encoders, ...)."""
    return [c for pipeline in pipelines for c in pipeline.components.values() if isinstance(c, nn.Module)]


@contextmanager
def preserved(*modules: nn.Module):
    saved = []
    for module in modules:
        devices = {parameter.device for parameter in module.parameters()}
        saved.append(
            (
                module,
                devices.pop() if len(devices) == 1 else None,  # a module spread over devices is left where it is
                [(m, m.training) for m in module.modules()],
                [(p, p.requires_grad) for p in module.parameters()],
            )
        )
    try:
        yield
    finally:
        for module, device, training_flags, grad_flags in saved:
            if device is not None and any(p.device != device for p in module.parameters()):
                module.to(device)
            for submodule, training in training_flags:
                submodule.training = training  # per module: train() would recurse into children
            for parameter, requires_grad in grad_flags:
                parameter.requires_grad_(requires_grad)


def leaves_pipelines_untouched(*parameter_names: str):
    """Decorator: the pipelines passed as these parameters come back as they went in (see `preserved`)."""

    def decorator(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs).arguments
            pipelines = [arguments[name] for name in parameter_names if arguments.get(name) is not None]
            with preserved(*pipeline_modules(*pipelines)):
                return function(*args, **kwargs)

        return wrapper

    return decorator
