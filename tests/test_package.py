"""The package's public names: every export resolves, and importing submodules cannot shadow a function."""

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import diffprune


def test_every_export_resolves_even_after_all_submodules_are_imported():
    for module in pkgutil.walk_packages(diffprune.__path__, "diffprune."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for name in diffprune.__all__:
        assert getattr(diffprune, name) is not None, name
    assert callable(diffprune.prune) and callable(diffprune.distill) and callable(diffprune.evaluate)
    assert diffprune.ModelMixin.__name__ == "ModelMixin"  # what stock diffusers looks up to reload


# What each folder may import from diffprune (its docstring says the same); the root's shared modules
# (errors, devices, tensors, outputs, distributed, timing) are open to all.
SHARED = {"errors", "devices", "tensors", "outputs", "distributed", "module_state", "timing"}
ALLOWED = {
    "families": set(),
    "structure": {"families"},
    "models": {"families", "structure"},
    "criteria": {"families", "structure", "models"},
    "pruning": {"families", "structure", "models", "criteria"},
    "recovery": {"families", "structure", "models"},
    "evaluation": {"families", "structure", "models"},
}


def diffprune_imports(path: Path) -> set[str]:
    """Modules of diffprune a file imports, at top level or deferred, as dotted names without "diffprune."."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("diffprune."):
            found.add(node.module.removeprefix("diffprune."))
    return found


def test_each_folder_imports_only_what_its_docstring_allows():
    root = Path(diffprune.__file__).parent
    for folder, allowed in ALLOWED.items():
        docstring = ast.get_docstring(ast.parse((root / folder / "__init__.py").read_text()))
        assert docstring and "May import" in docstring, folder
        for path in (root / folder).rglob("*.py"):
            for module in diffprune_imports(path):
                top = module.split(".")[0]
                ok = top in SHARED | {folder} or any(module == a or module.startswith(a + ".") for a in allowed)
                assert ok, f"{path.relative_to(root)} imports diffprune.{module}"


def test_removal_code_imports_nothing_from_diffprune_because_saved_cuts_carry_it():
    removal = Path(diffprune.__file__).parent / "structure" / "removal.py"
    assert diffprune_imports(removal) == set()
    assert "import diffprune" not in removal.read_text()


def runtime_import_graph() -> dict[str, set[str]]:
    """{module: diffprune modules it imports at run time (top level or deferred; not under TYPE_CHECKING)}."""
    root = Path(diffprune.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        type_only = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for node in ast.walk(block)
        }
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and id(node) not in type_only:
                module = node.module or ""
                targets |= {f"{module}.{alias.name}" for alias in node.names} | {module}
        graph[name] = (targets & modules.keys()) - {name}
    return graph


def test_no_import_cycles_between_modules():
    graph = runtime_import_graph()
    state = {}  # 1: on the current path, 2: done

    def visit(module, path):
        state[module] = 1
        for target in graph[module]:
            if target == "diffprune":  # the package's lazy __getattr__ imports on use, not on import
                continue
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*path, target])
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_the_command_line_parser_builds_without_importing_diffusers():
    """`diffprune --help` must stay fast: naming the criteria and flags needs no model code."""
    code = "from diffprune.cli import build_parser; build_parser(); import sys; print('diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
