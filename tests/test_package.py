"""The package's public names: every export resolves, and importing submodules cannot shadow a function."""

import importlib
import pkgutil

import diffprune


def test_every_export_resolves_even_after_all_submodules_are_imported():
    for module in pkgutil.walk_packages(diffprune.__path__, "diffprune."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for name in diffprune.__all__:
        assert getattr(diffprune, name) is not None, name
    assert callable(diffprune.prune) and callable(diffprune.distill) and callable(diffprune.evaluate)
    assert diffprune.ModelMixin.__name__ == "ModelMixin"  # what stock diffusers looks up to reload
