"""The curated public surface: every name in each module's ``__all__`` exists and is documented,
so that moving a module (a refactor into subpackages) cannot silently drop a name users import."""

import importlib
import inspect
import pkgutil

import pytest

import harness

MODULES = sorted(m.name for m in pkgutil.walk_packages(harness.__path__, "harness.")
                 if not m.name.endswith("__main__"))


def _public(module):
    """The module and its ``__all__`` (None where it has none)."""
    mod = importlib.import_module(module)
    return mod, getattr(mod, "__all__", None)


@pytest.mark.parametrize("module", ["harness", *MODULES])
def test_every_public_name_exists(module):
    mod, names = _public(module)
    assert names is not None, f"{module} has no __all__"
    assert len(set(names)) == len(names), f"{module}.__all__ repeats a name"
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize("module", ["harness", *MODULES])
def test_every_public_callable_is_documented(module):
    mod, names = _public(module)
    assert names is not None, f"{module} has no __all__"
    undocumented = [n for n in names if (inspect.isfunction(getattr(mod, n)) or inspect.isclass(getattr(mod, n)))
                    and not inspect.getdoc(getattr(mod, n))]
    assert not undocumented, f"{module}: public callables without a docstring: {undocumented}"


def test_the_package_surface_is_importable_by_name():
    namespace: dict = {}
    exec("from harness import *", namespace)  # noqa: S102 - what `from harness import *` gives a user
    assert set(harness.__all__) <= set(namespace)
