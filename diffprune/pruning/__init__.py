"""Pruning: `prune()`, which plans (units, scores from a criterion, the removal set under a `Budget`, the
settings that resume fingerprints: a `PrunePlan`), then cuts (surgery on the denoiser, the budget confirmed on
the cut model), and returns a `PruneResult` that saves a pipeline, a report built from the plan, and a model card.
The Budget and the greedy selection live one layer down (structure/selection.py), since criteria use them too.

May import: the package root's shared modules, families/, structure/, models/ and criteria/.
"""
