"""The package's layers (docs/library.md, "Layout"): no module imports from a layer above its own."""

import ast
import importlib
from pathlib import Path

import pytest

import harness

PACKAGE = Path(harness.__file__).parent
SHARED = {"errors", "registry", "options", "protocols"}  # used by every layer
LAYERS = {"kernels": 1, "training": 2, "measures": 2, "predictions": 2, "spec": 3, "run": 4, "output": 5}


def layer(module: str) -> int:
    """``harness.kernels.curvature`` -> 1; the shared modules 0; the package and its entry points 6."""
    parts = module.split(".")
    if len(parts) == 1:
        return 6
    return 0 if parts[1] in SHARED else LAYERS.get(parts[1], 6)


def imports(path: Path) -> list[tuple[str, str]]:
    """``(importing module, imported module)`` for every ``from harness... import`` in ``path``,
    lazy (in-function) imports included; ``from . import x`` names the module ``x``."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
    package = module if rel.name == "__init__" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            for alias in node.names if node.module is None else [None]:
                out.append((module, ".".join(base + [node.module or alias.name])))
        elif (node.module or "").split(".")[0] == "harness":
            out.append((module, node.module))
    return out


ALL = [pair for path in sorted(PACKAGE.rglob("*.py")) for pair in imports(path)]


def test_the_import_reader_sees_the_packages_imports():
    assert ("harness.run.runner", "harness.spec.types") in ALL
    assert ("harness.measures", "harness.measures.curvature") in ALL  # from . import curvature


# The update-rule protocol check (a shared module) asks whether a class is a ProblemRule: the one
# downward-looking import of the shared layer, made inside the function that needs it.
ALLOWED = {("harness.protocols", "harness.training.optimizers")}


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})" for a, b in ALL
              if layer(b) > layer(a) and (a, b) not in ALLOWED]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("old, new", [("harness.curvature", "harness.kernels.curvature"),
                                      ("harness.suite", "harness.spec.reader"),
                                      ("harness.optimizers", "harness.training.optimizers"),
                                      ("harness.statistics", "harness.spec.statistics"),
                                      ("harness.records", "harness.output.records")])
def test_a_module_path_from_before_the_layers_imports_the_moved_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


@pytest.mark.parametrize("old, new", [("harness.optimizers", "harness.training.optimizers"),
                                      ("harness.suite", "harness.spec.reader")])
def test_a_moved_module_imported_by_its_old_path_keeps_its_own_spec(old, new):
    """Its relative imports resolve against its own package (Python warns, and pytest fails, when
    ``__package__`` and ``__spec__.parent`` disagree)."""
    module = importlib.import_module(old)
    assert module.__spec__.name == new and module.__package__ == new.rsplit(".", 1)[0]
