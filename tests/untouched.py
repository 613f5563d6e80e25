"""Checking that library calls leave the caller's pipeline as it was: weights, devices, dtypes, modes, flags."""

import torch
from torch import nn


def snapshot(pipeline) -> dict:
    state = {}
    for name, component in pipeline.components.items():
        if isinstance(component, nn.Module):
            state[name] = (
                {key: tensor.clone() for key, tensor in component.state_dict().items()},
                [(p.device, p.dtype, p.requires_grad) for p in component.parameters()],
                [(key, module.training) for key, module in component.named_modules()],
            )
    return state


def assert_untouched(before: dict, pipeline) -> None:
    after = snapshot(pipeline)
    assert before.keys() == after.keys()
    for name in before:
        weights_before, weights_after = before[name][0], after[name][0]
        assert weights_before.keys() == weights_after.keys(), name
        for key in weights_before:
            torch.testing.assert_close(weights_before[key], weights_after[key], rtol=0, atol=0, msg=f"{name}.{key}")
        assert before[name][1] == after[name][1], f"{name}: devices, dtypes or requires_grad changed"
        assert before[name][2] == after[name][2], f"{name}: train/eval modes changed"
