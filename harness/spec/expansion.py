"""The suite format's shorthand, expanded on the raw TOML before it is validated.

Two constructs save a suite author from copying tables (docs/suite-format.md):

* **Sweep axes** (``[sweep]``): dotted keys ``"problem.depth" = [2, 3, 4]``, ``"optimizer.lr" =
  [...]``, ``"run.steps" = [...]``, combined as a ``mode = "product"`` (default) or ``"zip"``
  (the i-th values together); ``[[sweep]]`` tables are several such grids, their points
  joined (a rule without momentum beside rules with it). Each point is one *variant* of the
  suite: the file with those values written into its sections (``optimizer.kind`` too). ``id = ["problem.depth"]`` (zip only) names the axes a case id
  shows (default: all). An axis is labelled in case ids, ``where`` and ``across`` by its last key
  (``depth``), or by its dotted name where two axes share a last key. The old form, a list under
  ``[optimizer]`` in a file without ``[sweep]``, still reads as an axis of the optimizer (with a
  deprecation message); with ``[sweep]`` a list there is a value (Adam's ``betas = [0.9, 0.999]``).
* **Templates** (``for_each``): a table under ``[measures]`` or ``[events]`` or in ``[[expect]]``,
  ``[[sweep_expect]]`` or ``[[overlay]]`` with ``for_each = { r = [1, 2, 3], next = [2, 3, 4] }``
  (lists of equal length, taken together) stands for one table per position, with ``{r}`` and
  ``{next}`` substituted in its name and in every string in it; a string that is exactly
  ``"{r}"`` becomes the value itself (a number stays a number). A variant's axis labels are
  substituted the same way in those tables (``args = { rank = "{depth}" }``), except in
  ``[[sweep_expect]]``, which spans the variants.

Functions here are pure: raw tables in, new raw tables out, :class:`~harness.errors.SuiteError`
naming the file and key on bad input.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import SuiteError
from ..options import coerce

__all__ = ["Axis", "SweepBlock", "SweepSpec", "read_sweep", "variant", "expand_templates", "substitute", "point_label", "same_value"]

SWEEPABLE = ("problem", "optimizer", "run")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_TEMPLATE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def point_label(value: Any) -> str:
    """A sweep value as case ids spell it (``lr=0.3``): floats with ``%g``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Axis:
    """One sweep axis: ``section.key`` (e.g. ``problem.depth``), its label and its values."""

    section: str
    key: str
    label: str
    values: tuple

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}"


@dataclass(frozen=True)
class SweepBlock:
    """One ``[sweep]`` table: its axes, how they combine and which of them label case ids."""

    axes: tuple[Axis, ...] = ()
    zip: bool = False
    id_labels: tuple[str, ...] = ()

    def points(self) -> list[dict[str, Any]]:
        """Every combination (product) or the i-th values together (zip): ``{label: value}``;
        one empty point without axes."""
        combine = zip if self.zip else itertools.product
        labels = [a.label for a in self.axes]
        return [dict(zip(labels, combo)) for combo in combine(*(a.values for a in self.axes))]


@dataclass(frozen=True)
class SweepSpec:
    """The sweep of a suite: one block (``[sweep]``) or the union of several (``[[sweep]]``:
    grids with different axes, e.g. a rule without momentum beside rules with it)."""

    blocks: tuple[SweepBlock, ...] = (SweepBlock(),)
    deprecated: str | None = None  # the old form's message, to print where the suite is loaded

    @property
    def axes(self) -> tuple[Axis, ...]:
        return tuple(a for b in self.blocks for a in b.axes)

    def points(self) -> list[dict[str, Any]]:
        return [p for b in self.blocks for p in b.points()]

    def block_of(self, index: int) -> SweepBlock:
        """The block of the ``index``-th point of :meth:`points`."""
        for b in self.blocks:
            n = len(b.points())
            if index < n:
                return b
            index -= n
        raise IndexError(index)

    @property
    def values(self) -> dict[str, list]:
        """``{label: values}`` (each value once, in order): what ``where`` and ``across`` may name."""
        out: dict[str, list] = {}
        for a in self.axes:
            seen = out.setdefault(a.label, [])
            seen.extend(v for v in a.values if not any(same_value(v, w) for w in seen))
        return out

    @property
    def id_labels(self) -> tuple[str, ...]:
        labels = [label for b in self.blocks for label in b.id_labels]
        return tuple(dict.fromkeys(labels))


def same_value(a: Any, b: Any) -> bool:
    """Equal values of the same kind: ``true`` is not ``1`` (bool is an int in Python)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _labels(dotted: list[str]) -> dict[str, str]:
    last = {d: d.split(".", 1)[1] for d in dotted}
    keys = {}
    for d, k in last.items():  # one label per dotted name; the dotted name where two share a last key
        clash = sum(1 for e in last if last[e] == k) > 1
        keys[d] = d if clash or k == "seed" else k
    return keys


def read_sweep(raw: dict, file: str) -> SweepSpec:
    """The ``[sweep]`` table(s) of a raw suite (or the old form: lists under ``[optimizer]``)."""
    if "sweep" not in raw:
        return _old_form(raw, file)
    tables = raw["sweep"]
    if isinstance(raw.get("optimizer"), dict) and "sweep" in raw["optimizer"]:
        raise SuiteError(file, "optimizer.sweep", "with a [sweep] table, write its mode there: sweep.mode = 'zip'")
    many = isinstance(tables, list)
    tables = tables if many else [tables]
    if not tables:
        raise SuiteError(file, "sweep", "expected at least one [[sweep]] table")
    paths = [f"sweep[{i}]" if many else "sweep" for i in range(len(tables))]
    dotted_all: list[str] = []
    for table, path in zip(tables, paths):
        if not isinstance(table, dict):
            raise SuiteError(file, path, f"expected a table of axes such as \"optimizer.lr\" = [0.1, 0.2], got {table!r}")
        dotted_all += [k for k in table if k not in ("mode", "id") and k not in dotted_all]
    labels = _labels(dotted_all)
    blocks = tuple(_block(raw, table, file, path, labels) for table, path in zip(tables, paths))
    spec = SweepSpec(blocks)
    ids = [tuple((label, point_label(p[label])) for label in spec.id_labels if label in p) for p in spec.points()]
    repeated = sorted({"-".join(f"{k}={v}" for k, v in i) for i in ids if ids.count(i) > 1})
    if repeated:
        raise SuiteError(file, "sweep", f"two sweep points have the same case id {repeated} (each point is a case): "
                         "make the values distinct" + (" or name more axes in id" if any(
                             len(b.id_labels) < len(b.axes) for b in blocks) else ""))
    return spec


def _block(raw: dict, table: dict, file: str, path: str, labels: dict[str, str]) -> SweepBlock:
    mode = coerce(table.get("mode", "product"), Literal["product", "zip"], file, f"{path}.mode")
    dotted = [k for k in table if k not in ("mode", "id")]
    if not dotted:
        raise SuiteError(file, path, "expected at least one axis such as \"optimizer.lr\" = [0.1, 0.2]")
    for d in dotted:
        section, _, key = d.partition(".")
        if section not in SWEEPABLE or not key or "." in key:
            raise SuiteError(file, f"{path}.{d}", f"expected an axis named SECTION.KEY with SECTION one of "
                             f"{list(SWEEPABLE)} (a quoted key: \"optimizer.lr\" = [...]), got {d!r}")
        sec = raw.get(section)
        if isinstance(sec, dict) and key in sec:
            raise SuiteError(file, f"{path}.{d}", f"{section}.{key} is also given in [{section}]; give it there or "
                             "as a sweep axis, not both")
        values = table[d]
        if not isinstance(values, list) or not values:
            raise SuiteError(file, f"{path}.{d}", f"expected a non-empty list of values (one case each), got {values!r}")
    axes = tuple(Axis(*d.split(".", 1), labels[d], tuple(table[d])) for d in dotted)
    zipped = mode == "zip"
    id_labels = tuple(a.label for a in axes)
    if "id" in table:
        ids = table["id"]
        if not zipped:
            raise SuiteError(file, f"{path}.id", "only a zip sweep names its id axes (a product's case ids need every axis)")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise SuiteError(file, f"{path}.id", f"expected a non-empty list of axis names, got {ids!r}")
        for i, name in enumerate(ids):
            if name not in dotted and name not in {labels[d] for d in dotted}:
                raise SuiteError(file, f"{path}.id[{i}]", f"expected an axis of this sweep {dotted}, got {name!r}")
        id_labels = tuple(labels.get(n, n) for n in ids)
    return _checked(SweepBlock(axes, zipped, id_labels), file, path)


def _old_form(raw: dict, file: str) -> SweepSpec:
    """Lists under ``[optimizer]`` (no ``[sweep]`` table): axes of the optimizer, deprecated."""
    opt = raw.get("optimizer")
    if not isinstance(opt, dict):
        return SweepSpec()
    mode = coerce(opt.get("sweep", "product"), Literal["product", "zip"], file, "optimizer.sweep")
    lists = [k for k, v in opt.items() if k not in ("kind", "sweep") and isinstance(v, list)]
    for key in lists:
        if not opt[key]:
            raise SuiteError(file, f"optimizer.{key}", "a sweep axis needs at least one value")
    if not lists:
        if "sweep" in opt:
            raise SuiteError(file, "optimizer.sweep", "a sweep mode without a list to sweep")
        return SweepSpec()
    axes = tuple(Axis("optimizer", k, k, tuple(opt[k])) for k in lists)
    message = (f"{file}: optimizer: deprecated: a list under [optimizer] is a sweep axis only in a file without "
               f"[sweep]; write [sweep] " + ", ".join(f'"optimizer.{k}" = [...]' for k in lists)
               + (' and mode = "zip"' if mode == "zip" else "") + " (docs/suite-format.md, 'Sweeps')")
    return SweepSpec((_checked(SweepBlock(axes, mode == "zip", tuple(lists)), file, "optimizer"),), message)


def _checked(block: SweepBlock, file: str, where: str) -> SweepBlock:
    """Every case id distinct: a repeated value would run the same case twice."""
    old = where == "optimizer"
    path = (lambda a: f"optimizer.{a.key}") if old else (lambda a: f"{where}.{a.dotted}")
    if block.zip:
        if len({len(a.values) for a in block.axes}) > 1:
            raise SuiteError(file, "optimizer.sweep" if old else f"{where}.mode",
                             "with mode 'zip' every axis must have the same length, got "
                             + ", ".join(f"{a.dotted}: {len(a.values)}" for a in block.axes))
        ids = [tuple(point_label(p[label]) for label in block.id_labels) for p in block.points()]
        if len(set(ids)) != len(ids):
            raise SuiteError(file, "optimizer.sweep" if old else (f"{where}.id" if len(block.id_labels) < len(block.axes)
                                                                    else f"{where}.mode"),
                             f"every point must differ in its id axes {list(block.id_labels)} (each is a case), got {ids}")
    else:
        for a in block.axes:
            labels = [point_label(v) for v in a.values]
            if len(set(labels)) != len(labels):
                raise SuiteError(file, path(a), f"expected distinct values (each is a case), got {list(a.values)!r}")
    return block


def variant(raw: dict, spec: SweepSpec, point: dict[str, Any]) -> dict:
    """The raw suite of one sweep point: the axes' values written into their sections, the
    ``[sweep]`` table (or the old form's lists) gone, the point's labels substituted in templates."""
    out = copy.deepcopy({k: v for k, v in raw.items() if k != "sweep"})
    if spec.deprecated and isinstance(out.get("optimizer"), dict):
        out["optimizer"].pop("sweep", None)
    for a in spec.axes:
        section = out.setdefault(a.section, {})
        if isinstance(section, dict) and a.label in point:
            section[a.key] = copy.deepcopy(point[a.label])
    return out


def substitute(value: Any, names: dict[str, Any]) -> Any:
    """``value`` with every ``{name}`` of ``names`` substituted in its strings (recursively);
    a string that is exactly ``"{name}"`` becomes the value itself. Other braces stay as written."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in names:
            return copy.deepcopy(names[whole.group(1)])
        return _PLACEHOLDER.sub(lambda m: point_label(names[m.group(1)]) if m.group(1) in names else m.group(0), value)
    if isinstance(value, dict):
        return {substitute(k, names): substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    return value


def _for_each(table: Any, file: str, path: str) -> list[dict[str, Any]] | None:
    """The positions of a table's ``for_each`` (``None`` without one)."""
    if not isinstance(table, dict) or "for_each" not in table:
        return None
    spec = table["for_each"]
    if not isinstance(spec, dict) or not spec:
        raise SuiteError(file, f"{path}.for_each", f"expected a table of lists such as {{ r = [1, 2, 3] }}, got {spec!r}")
    for name, values in spec.items():
        if not _TEMPLATE_NAME.fullmatch(name):
            raise SuiteError(file, f"{path}.for_each.{name}", "expected a placeholder name: letters, digits and '_'")
        if not isinstance(values, list) or not values:
            raise SuiteError(file, f"{path}.for_each.{name}", f"expected a non-empty list, got {values!r}")
    if len({len(v) for v in spec.values()}) > 1:
        raise SuiteError(file, f"{path}.for_each", "its lists are taken together and must have the same length, got "
                         + ", ".join(f"{k}: {len(v)}" for k, v in spec.items()))
    return [dict(zip(spec, combo)) for combo in zip(*spec.values())]


def expand_templates(raw: dict, file: str, point: dict[str, Any] | None = None) -> tuple[dict, dict[str, str]]:
    """``raw`` with every ``for_each`` table expanded and ``point``'s labels substituted, and
    ``{expanded path: path as written}`` for the tables of ``[[...]]`` arrays, so that a message
    names the table the author wrote (``expect[2] (r=3)``)."""
    point = point or {}
    out = dict(raw)
    origin: dict[str, str] = {}
    for section in ("measures", "events"):
        tables = raw.get(section)
        if not isinstance(tables, dict):
            continue
        new: dict[str, Any] = {}
        for name, table in tables.items():
            path = f"{section}.{name}"
            positions = _for_each(table, file, path)
            if positions is None:
                _add(new, name, substitute(table, point), file, path, section)
                continue
            for names in positions:
                env = {**point, **names}
                if not any(f"{{{n}}}" in name for n in names):
                    raise SuiteError(file, path, f"a for_each table's name must use a placeholder ({', '.join('{' + n + '}' for n in names)}) "
                                     "so that each copy has its own name")
                body = {k: v for k, v in table.items() if k != "for_each"}
                _add(new, substitute(name, env), substitute(body, env), file, path, section)
        out[section] = new
    for section in ("expect", "sweep_expect", "overlay"):
        tables = raw.get(section)
        if not isinstance(tables, list):
            continue
        env0 = point if section != "sweep_expect" else {}
        new_list: list = []
        for i, table in enumerate(tables):
            path = f"{section}[{i}]"
            positions = _for_each(table, file, path)
            if positions is None:
                origin[f"{section}[{len(new_list)}]"] = path
                new_list.append(substitute(table, env0))
                continue
            for names in positions:
                body = {k: v for k, v in table.items() if k != "for_each"}
                origin[f"{section}[{len(new_list)}]"] = f"{path} ({', '.join(f'{k}={point_label(v)}' for k, v in names.items())})"
                new_list.append(substitute(body, {**env0, **names}))
        out[section] = new_list
    return out, origin


def _add(tables: dict, name: Any, table: Any, file: str, path: str, section: str) -> None:
    if not isinstance(name, str):
        raise SuiteError(file, path, f"a {section} name must be a string, got {name!r}")
    if name in tables:
        raise SuiteError(file, path, f"{section}.{name} is defined twice (a for_each copy and another table)")
    tables[name] = table
