"""The training step the bundled models share: warm-up/cosine learning rate, clipped AdamW step, EMA update.

EMA weights are what we ship: a short run's raw weights give noticeably blotchier samples.
"""

from __future__ import annotations

import math

import torch


def schedule_factor(step: int, total_steps: int, warmup_steps: int = 100) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    return min(1.0, (step + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / total_steps))


def optimizer_step(model, ema, optimizer, loss, learning_rate: float, step: int, max_decay: float = 0.995) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    decay = min(max_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for averaged, current in zip(ema.parameters(), model.parameters(), strict=True):
            averaged.lerp_(current, 1 - decay)
