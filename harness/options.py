"""Typed option tables: a frozen dataclass declares the keys a suite table may hold.

A problem, optimiser or measure is a frozen dataclass; its fields say which keys the suite
file may give, their types, their defaults, and (in ``metadata["check"]``) a constraint.
:func:`build` turns a TOML table into an instance or raises :class:`SuiteError` naming the
file, the key path and what was expected. Unknown keys are errors (a typo never passes).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal

from .errors import SuiteError
from .registry import suggest

__all__ = ["build", "positive", "nonnegative", "unit_interval", "check_keys", "describe"]

positive = {"check": "positive"}
nonnegative = {"check": "nonnegative"}
unit_interval = {"check": "unit_interval"}  # [0, 1)

_CHECKS = {
    "positive": (lambda x: x > 0, "a number > 0"),
    "nonnegative": (lambda x: x >= 0, "a number >= 0"),
    "unit_interval": (lambda x: 0 <= x < 1, "a number in [0, 1)"),
}


def check_keys(table: dict, allowed: typing.Iterable[str], file: str, path: str) -> None:
    """Reject keys of ``table`` not in ``allowed``, with a did-you-mean hint."""
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            raise SuiteError(file, _join(path, key), f"unknown key{suggest(key, allowed)}; allowed keys: {sorted(allowed)}")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(tp: Any) -> str:
    """A human name for a type annotation."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a list of {describe(args[0])}" if args else "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            dict: "a table"}.get(tp, getattr(tp, "__name__", str(tp)))


def coerce(value: Any, tp: Any, file: str, path: str) -> Any:
    """``value`` checked against annotation ``tp`` (ints are accepted as floats)."""
    if tp in (list, tuple):  # a bare ``list`` (a user's kind may write one): a list of anything
        tp = tp[Any]
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, file, path)
            except SuiteError:
                continue
        raise SuiteError(file, path, f"expected {describe(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            hint = suggest(str(value), [str(a) for a in typing.get_args(tp)])
            raise SuiteError(file, path, f"expected {describe(tp)}, got {value!r}{hint}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise SuiteError(file, path, f"expected {describe(tp)}, got {value!r}")
        (arg, *_) = typing.get_args(tp) or (Any,)
        items = [coerce(v, arg, file, _join(path, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if not isinstance(value, bool):
            raise SuiteError(file, path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SuiteError(file, path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SuiteError(file, path, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SuiteError(file, path, f"expected a string, got {value!r}")
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise SuiteError(file, path, f"expected a table, got {value!r}")
        return value
    raise TypeError(f"unsupported option type {tp!r}")


def build(cls: type, table: dict, file: str, path: str, skip: typing.Iterable[str] = (), fields_only: bool = False) -> Any:
    """An instance of dataclass ``cls`` from ``table``, or a :class:`SuiteError`.

    ``skip`` names keys of ``table`` that belong to the caller (for example ``kind``). A class
    with a ``from_table(table, file, path, skip)`` classmethod builds itself (its keys are not its
    fields: ``torch_optim`` passes them to a constructor); it calls back with ``fields_only``.
    """
    if not isinstance(table, dict):
        raise SuiteError(file, path, f"expected a table, got {table!r}")
    if not fields_only and callable(getattr(cls, "from_table", None)):
        return cls.from_table(table, file, path, tuple(skip))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(table, [*fields, *skip], file, path)
    table = {k: v for k, v in table.items() if k not in set(skip)}
    kwargs = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SuiteError(file, key, f"missing; expected {describe(hints[name])}")
            continue
        value = coerce(table[name], hints[name], file, key)
        check = f.metadata.get("check")
        if check is not None and value is not None:
            ok, what = _CHECKS[check]
            values = value if isinstance(value, (list, tuple)) else [value]
            for i, v in enumerate(values):
                if not ok(v):
                    where = key if values is not value else _join(key, i)
                    raise SuiteError(file, where, f"expected {what}, got {v!r}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise SuiteError(file, path, str(exc)) from None
