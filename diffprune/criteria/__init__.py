"""Criteria: what scores the denoiser's units (lower = safer to remove). One file per criterion, one name for
it across registry key, module and class:

    ld-pruner   ld_pruner.py    LDPruner     latent impact of removing a unit (Castells et al., 2024)
    gradflow    gradflow.py     GradFlow     gradient-flow soft masks under the budget (Wan et al., 2025)
    output-loss output_loss.py  OutputLoss   exact change of the objective when the unit is removed alone
    taylor      taylor.py       Taylor       Gauss-Newton / first-order Taylor of the objective at each gate

The loss-based ones (gradflow, output-loss, taylor) take `objective`: "guided" (default: guided prediction and
guidance direction relative to the original's, on the sampler's own path) or "denoising-loss" (objectives.py).
    magnitude   magnitude.py    Magnitude    mean absolute weight (data-free)
    random      random.py       Random       seeded uniform scores, the floor

`prune(pipeline, criterion=...)` takes a name (`get_criterion("ld-pruner", statistic="paired")`), an instance
(`LDPruner(statistic="paired")`), or any object with `score(context, candidates, removed, round_index)`
returning {unit name: score} (or a ScoreResult); a user's own criterion needs no registration (see README).
Scores are kept in a ScoreStore (score_store.py), so an interrupted run resumes.

A criterion returns its scores as a value (base.ScoreResult: the scores, and the denoiser it trained, if it
trained one); prune() does the selection and the cut. Criteria that aim at the budget (gradflow, LD-Pruner's
adaptive allocation) use the same Budget and greedy selection as prune, from structure/selection.py.

May import: the package root's shared modules, families/, structure/ and models/; nothing from pruning/.
"""

from __future__ import annotations

import sys
import typing
from importlib import import_module

from diffprune.errors import DiffpruneError

# The criteria that ship: registry key -> module (its class registers under the key with @register). Listed
# here so naming them (the CLI's --help) does not import torch and diffusers; the modules load on first use.
BUILTIN_CRITERIA = {
    "gradflow": "gradflow",
    "ld-pruner": "ld_pruner",
    "magnitude": "magnitude",
    "output-loss": "output_loss",
    "random": "random",
    "taylor": "taylor",
}
_CLASSES = {
    "GradFlow": "gradflow",
    "LDPruner": "ld_pruner",
    "Magnitude": "magnitude",
    "OutputLoss": "output_loss",
    "Random": "random",
    "Taylor": "taylor",
}
_BASE_NAMES = (
    "CRITERIA",
    "SCORE_NEUTRAL",
    "Criterion",
    "ScoreResult",
    "ScoringContext",
    "make_criterion",
    "options_of",
    "register",
)


def __getattr__(name):
    if name in _CLASSES:
        return getattr(import_module(f"{__name__}.{_CLASSES[name]}"), name)
    if name in _BASE_NAMES:
        return getattr(import_module(f"{__name__}.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def registry() -> dict:
    """{name: criterion class}: the built-in ones (imported here) and any a user registered."""
    for module in BUILTIN_CRITERIA.values():
        import_module(f"{__name__}.{module}")
    return import_module(f"{__name__}.base").CRITERIA


def available_criteria() -> list[str]:
    base = sys.modules.get(f"{__name__}.base")
    return sorted(set(BUILTIN_CRITERIA) | set(base.CRITERIA if base else ()))


def get_criterion(name: str, **options):
    """The registered criterion `name` with `options` (its dataclass fields)."""
    criteria = registry()
    if name not in criteria:
        raise DiffpruneError(f"unknown criterion {name!r}; choose one of: {', '.join(available_criteria())}")
    return import_module(f"{__name__}.base").make_criterion(criteria[name], options)


def resolve_criterion(criterion):
    """A name or an object with `score` -> the criterion object prune() runs."""
    if isinstance(criterion, str):
        return get_criterion(criterion)
    if isinstance(criterion, type):
        raise DiffpruneError(f"pass an instance of {criterion.__name__} (e.g. {criterion.__name__}()), not the class")
    if not callable(getattr(criterion, "score", None)):
        raise DiffpruneError(
            f"criterion must be a name ({', '.join(available_criteria())}) or an object with "
            f"score(context, candidates, removed, round_index); got {type(criterion).__name__}"
        )
    return criterion


def parse_option_values(name: str, pairs: list[str]) -> dict:
    """["statistic=paired", "steps=30"] -> typed options of criterion `name`, converted by its field types."""
    criteria = registry()
    if name not in criteria:
        raise DiffpruneError(f"unknown criterion {name!r}; choose one of: {', '.join(available_criteria())}")
    # `int | None` and the like convert by their first type
    options_of = import_module(f"{__name__}.base").options_of
    types = {key: (typing.get_args(kind) or (kind,))[0] for key, kind in options_of(criteria[name]).items()}
    options = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator:
            raise DiffpruneError(f"criterion option {pair!r} is not key=value")
        kind = types.get(key, str)
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise DiffpruneError(f"criterion option {key} expects true or false, got {text!r}")
            options[key] = text.lower() in ("true", "1")
        else:
            try:
                options[key] = kind(text)
            except (TypeError, ValueError):
                raise DiffpruneError(f"criterion option {key} expects {kind.__name__}, got {text!r}") from None
    return options


__all__ = [
    "CRITERIA",
    "SCORE_NEUTRAL",
    "Criterion",
    "GradFlow",
    "LDPruner",
    "Magnitude",
    "OutputLoss",
    "Random",
    "ScoreResult",
    "ScoringContext",
    "Taylor",
    "available_criteria",
    "get_criterion",
    "parse_option_values",
    "register",
    "resolve_criterion",
]
