"""Selection and pruning: choosing units under a `Budget` from a criterion's scores, and `prune()`, which runs
units -> scores -> selection -> surgery and returns a `PruneResult` that saves a pipeline, a report and a model card.

May import: the package root's shared modules, families/, structure/, models/ and criteria/.
"""
