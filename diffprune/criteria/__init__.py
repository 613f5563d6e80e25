"""Criteria registry: each criterion is one file that registers itself by name.

`get_criterion("ld-pruner")` returns an instance; `available_criteria()` lists every registered name (the
CLI's --method choices). A new criterion is one new file in this folder plus its name in CRITERION_MODULES.
"""

from __future__ import annotations

from importlib import import_module

from ..errors import DiffpruneError
from .base import Criterion, ScoringContext

_REGISTRY: dict[str, type[Criterion]] = {}
CRITERION_MODULES = ["latent_impact", "gradient_flow", "magnitude", "taylor", "output_loss", "random_scores"]


def register(name: str):
    def decorator(cls: type[Criterion]) -> type[Criterion]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_all() -> None:
    for module in CRITERION_MODULES:
        import_module(f".{module}", __name__)


def available_criteria() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_criterion(name: str, **options) -> Criterion:
    _load_all()
    if name not in _REGISTRY:
        raise DiffpruneError(f"unknown method {name!r}; choose one of: {', '.join(available_criteria())}")
    return _REGISTRY[name](**options)


__all__ = ["Criterion", "ScoringContext", "available_criteria", "get_criterion", "register"]
