"""A name -> object table used for problems, optimisers, measures, predictions, losses and data sets.

A suite names an entry either by its registered name (``"mlp"``) or by an import path
``"package.module:Name"`` (``"package.module:Outer.Inner"`` for a nested attribute). An import
path is imported on first use and checked against the protocol of the registry's kind
(:mod:`harness.protocols`); what it lacks is reported by :meth:`Registry.unknown`, which the
suite loader turns into ``FILE: key: message`` and exit code 2.

Plugins: a package registers its kinds by importing ``harness`` registries and decorating
(``@PREDICTIONS.register("my_edge")``) in a module that is loaded by :func:`load_plugins`:
named explicitly (``theory-harness run --plugin package.module``, the pytest ini option
``harness_plugins``), or advertised under the entry-point group ``theory_harness.plugins``
(``[project.entry-points."theory_harness.plugins"] name = "package.module"``), which is loaded
the first time a registry is asked for a name it does not hold.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
from typing import Any, Generic, Iterable, Iterator, TypeVar

__all__ = ["Registry", "suggest", "is_import_path", "resolve_import_path", "load_plugins", "ENTRY_POINT_GROUP"]

T = TypeVar("T")

ENTRY_POINT_GROUP = "theory_harness.plugins"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_PATH = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")


def is_import_path(name: object) -> bool:
    """Whether ``name`` has the form ``"package.module:Name"``."""
    return isinstance(name, str) and _IMPORT_PATH.fullmatch(name) is not None


def _import_module(module: str) -> Any:
    """``importlib.import_module`` with a :class:`LookupError` that says what went wrong."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise LookupError(f"cannot import module {module!r}: no module named {missing!r} "
                              "(is its package installed in this environment, e.g. `pip install -e path/to/package`?)"
                              ) from None
        raise LookupError(f"importing module {module!r} failed: ModuleNotFoundError: {exc}") from None
    except Exception as exc:  # the user's module raised while being imported
        raise LookupError(f"importing module {module!r} raised {type(exc).__name__}: {exc}") from None


def resolve_import_path(path: str) -> Any:
    """The object named by ``"package.module:Name"`` (or ``"package.module:Outer.Inner"``).

    Raises :class:`LookupError` whose message names the module or attribute that is missing.
    """
    if not is_import_path(path):
        raise LookupError(f"expected an import path 'package.module:Name', got {path!r}")
    module, _, attr = path.partition(":")
    obj = _import_module(module)
    where = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise LookupError(f"{where!r} has no attribute {part!r}{suggest(part, public)}")
        obj, where = getattr(obj, part), f"{where}:{part}" if where == module else f"{where}.{part}"
    return obj


def resolve_dotted(name: str) -> Any:
    """``"package.module:Name"`` or the dotted ``"package.module.Name"`` (``"torch.optim.SGD"``)."""
    if is_import_path(name):
        return resolve_import_path(name)
    if not isinstance(name, str) or not re.fullmatch(rf"{_IDENT}(?:\.{_IDENT})+", name):
        raise LookupError(f"expected 'package.module:Name' or 'package.module.Name', got {name!r}")
    module, _, attr = name.rpartition(".")
    return resolve_import_path(f"{module}:{attr}")


_plugins: dict[str, str] = {}  # module or entry point -> "loaded"
_entry_points_loaded = False


def load_plugins(modules: Iterable[str] = (), entry_points: bool = True) -> list[str]:
    """Import plugin ``modules`` (each registers its kinds as it is imported) and, once per
    process, every entry point of the group ``theory_harness.plugins`` (a module, imported; or a
    function, called with no arguments). Returns what was loaded by this call.

    Raises :class:`~harness.errors.HarnessError` naming the plugin when one cannot be loaded.
    """
    from .errors import HarnessError

    global _entry_points_loaded
    done = []
    for module in modules:
        if module in _plugins:
            continue
        try:
            _import_module(module)
        except LookupError as exc:
            raise HarnessError(f"plugin {module!r}: {exc}") from None
        _plugins[module] = "loaded"
        done.append(module)
    if entry_points and not _entry_points_loaded:
        _entry_points_loaded = True  # once, even if one fails: a broken plugin is reported, not retried
        from importlib.metadata import entry_points as _eps

        for ep in sorted(_eps(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            key = f"{ep.name} = {ep.value}"
            if key in _plugins:
                continue
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, type(sys)):
                    obj()
            except Exception as exc:
                dist = getattr(getattr(ep, "dist", None), "name", None)
                raise HarnessError(f"plugin {ep.name!r} (entry point group {ENTRY_POINT_GROUP!r}"
                                   + (f" of package {dist!r}" if dist else "")
                                   + f", {ep.value!r}) failed to load: {type(exc).__name__}: {exc}") from None
            _plugins[key] = "loaded"
            done.append(key)
    return done


def suggest(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice (by similarity or prefix), else ``""``."""
    close = difflib.get_close_matches(str(name), choices, n=1)
    if not close:
        close = [c for c in choices if c.startswith(str(name)) or str(name).startswith(c)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Named entries of one kind; unknown names get a did-you-mean hint.

    ``"package.module:Name"`` is looked up by importing it and checking it against the kind's
    protocol (:func:`harness.protocols.lacks`); a name that is neither registered nor an import
    path loads the entry-point plugins once and is looked up again.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._paths: dict[str, T] = {}  # import paths resolved so far
        self._errors: dict[str, str] = {}  # why an import path could not be used

    def register(self, name: str):
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _resolve(self, path: str) -> bool:
        """Import ``path`` and check it against the kind's protocol; remember why not."""
        if path in self._paths:
            return True
        from .protocols import lacks

        try:
            obj = resolve_import_path(path)
        except LookupError as exc:
            self._errors[path] = str(exc)
            return False
        missing = lacks(self.kind, obj)
        if missing:
            article = "an" if self.kind[0] in "aeiou" else "a"
            self._errors[path] = f"{path!r} cannot be used as {article} {self.kind}: {missing}"
            return False
        self._errors.pop(path, None)
        self._paths[path] = obj
        return True

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self._items:
            return True
        if is_import_path(name):
            return self._resolve(name)
        if isinstance(name, str) and load_plugins():  # plugins not loaded yet: they may register it
            return name in self._items
        return False

    def __getitem__(self, name: str) -> T:
        if name in self:
            return self._items[name] if name in self._items else self._paths[name]
        raise KeyError(self.unknown(name))

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def unknown(self, name: str) -> str:
        """The message for an unknown name: what exists and the closest match (for an import
        path: why it could not be imported or what it lacks)."""
        if is_import_path(name) and (name in self._errors or not self._resolve(name)):
            return self._errors[name]
        load_plugins()
        hint = "" if not isinstance(name, str) or ":" not in name else \
            " (an import path reads 'package.module:Name')"
        return (f"unknown {self.kind} {name!r}{suggest(name, self.names())}{hint}; expected one of {self.names()} "
                "or an import path 'package.module:Name'")
