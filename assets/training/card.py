"""Model-card helpers shared by the training scripts.

Why: every bundled model carries a README.md that says what data, architecture, size, training
cost and metrics it has, and the exact command that reproduces it; writing them from the script
keeps the card honest (numbers come from the run, not from memory).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters of a torch module."""
    return sum(p.numel() for p in module.parameters())


def folder_size_mb(folder) -> float:
    """Total size on disk of a folder, in MB (the zoo must stay small)."""
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total / 1e6


def write_card(folder, title: str, sections: dict[str, str]) -> None:
    """Write folder/README.md with a title and markdown sections in the given order."""
    lines = [f"# {title}", ""]
    for head, body in sections.items():
        lines += [f"## {head}", "", body.strip(), ""]
    Path(folder, "README.md").write_text("\n".join(lines))
