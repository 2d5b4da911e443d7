"""Suite files: TOML (read with ``tomllib``) into the frozen types of :mod:`harness.spec.types`,
validated up front.

The format is documented in ``docs/suite-format.md``. Every problem is reported as a
:class:`~harness.errors.SuiteError` naming the file, the key path and what was expected. This
module is the only one that reads TOML or looks names up in the registries for a suite; the
types it builds carry neither.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .checks import CHECKS, Target, tolerance_keys
from ..errors import HarnessError, SuiteError
from .expansion import SweepSpec, expand_templates, point_label, read_sweep, same_value, variant
from ..measures import MEASURES
from ..training.optimizers import OPTIMIZERS, roles
from ..options import build, check_keys, coerce, positive
from ..predictions import PREDICTIONS, arguments
from ..training.problems import PROBLEMS
from .types import DEVICES, DTYPES, SCHEMA_VERSION, EventSpec, Expectation, MeasureSpec, Overlay, Suite, Window
from .statistics import StatisticSpecError, parse_statistic

__all__ = ["load_suite", "check_unique_ids", "update_rule", "recorded_points", "MAX_RUN_STEPS",
           "MAX_RECORDED_POINTS"]

_ID = re.compile(r"[a-z0-9][a-z0-9_.\-]*")








@dataclass(frozen=True)
class _WindowTable:
    anchor: str = "start"
    offset: int = field(default=0, metadata={"check": "nonnegative"})
    length: int | None = field(default=None, metadata={"check": "nonnegative"})
    fraction: float | None = field(default=None, metadata={"check": "positive"})
    until: str | None = None


# An expectation's own keys; the keys of its check come from the check classes themselves
# (harness/spec/checks.py), so a new check kind brings its keys with it.
_EXPECT_FIELDS = [
    ("name", str, ""), ("measure", str, ""), ("predict", str | None, None), ("args", dict | None, None),
    ("compare", Literal["ratio", "difference"] | None, None), ("statistic", Any, None),
    ("window", dict | None, None), ("on", dict | None, None), ("why", str, ""), ("across", str | None, None),
    ("aggregate", Literal["spearman", "min", "max", "median", "mean", "last_over_first"] | None, None),
    ("allow_divergence", bool, False), ("where", dict | None, None)]


def _table_types() -> tuple[type, type]:
    """``(tolerance table, expectation table)``: the dataclasses an ``[[expect]]`` table and its
    ``on.<device>`` overrides are read into, for the check kinds registered now."""
    return _table_types_for(tuple(tolerance_keys().values()), tuple(CHECKS))


@functools.lru_cache(maxsize=8)
def _table_types_for(keys: tuple, kinds: tuple[str, ...]) -> tuple[type, type]:
    tolerance = dataclasses.make_dataclass(
        "_ToleranceTable", [(k.name, k.type | None, field(default=None, metadata={"check": k.check} if k.check else {}))
                            for k in keys], frozen=True)
    expect = dataclasses.make_dataclass(
        "_ExpectTable", [(n, t, field(default=d)) for n, t, d in _EXPECT_FIELDS] +
        [("check", Literal[kinds], field(default="approx"))], bases=(tolerance,), frozen=True)
    return tolerance, expect


@dataclass(frozen=True)
class _SuiteTable:
    id: str
    claim: str
    source: str
    devices: list[str] = field(default_factory=lambda: list(DEVICES))
    dtype: Any = "float64"
    seeds: list[int] = field(default_factory=lambda: [0])
    matmul_precision: Literal["highest", "high", "medium"] = "highest"
    slow: bool = True
    report_only: bool = False


@dataclass(frozen=True)
class _RunTable:
    steps: int = field(metadata=positive)
    stop: dict | None = None


@dataclass(frozen=True)
class _StopTable:
    event: str
    after: int = field(default=0, metadata={"check": "nonnegative"})


# Bounded work (docs/suite-format.md, "Bounds"). The longest catalogue run is 20,000 steps
# (relu_provable_failure): 50x that. A case's trajectories hold every recorded point in memory
# and in its record; the most a catalogue case records is 36,407 points (dmf_identity at depth 3:
# 7 measures x 5,201 steps): about 7x that.
MAX_RUN_STEPS = 1_000_000
MAX_RECORDED_POINTS = 250_000


def _multiples(lo: int, hi: int, c: int) -> int:
    """How many ``t`` in ``[lo, hi]`` (``0 <= lo``) are multiples of ``c``."""
    return 0 if hi < lo else hi // c - (lo - 1) // c


def recorded_points(spec: MeasureSpec, steps: int) -> int:
    """How many points measure ``spec`` records at most in a run of ``steps`` steps (exactly,
    for a measure without ``from_event``; for one with it, as if the event fired at step 0)."""
    if spec.from_event is not None:
        return _multiples(0, steps, spec.every) + (steps % spec.every != 0)
    cu = min(spec.coarse_until, steps + 1)
    n = _multiples(0, cu - 1, spec.coarse_every) + _multiples(cu, steps, spec.every)
    last_counted = (steps % spec.coarse_every == 0) if steps < cu else (steps % spec.every == 0)
    return n + (not last_counted)


def _check_bounds(file: str, steps: int, measures: dict[str, MeasureSpec]) -> None:
    """Refuse a run longer than :data:`MAX_RUN_STEPS` or one whose measures would record more than
    :data:`MAX_RECORDED_POINTS` points in all (work and memory stay bounded)."""
    if steps > MAX_RUN_STEPS:
        raise SuiteError(file, "run.steps", f"at most {MAX_RUN_STEPS:,} steps per run (docs/suite-format.md, "
                         f"'Bounds'), got {steps:,}")
    counts = {name: recorded_points(spec, steps) for name, spec in measures.items()}
    if sum(counts.values()) > MAX_RECORDED_POINTS:
        top = max(counts, key=counts.get)
        raise SuiteError(file, "measures", f"a case would record {sum(counts.values()):,} points over {steps:,} "
                         f"steps ({', '.join(f'{n}: {c:,}' for n, c in counts.items())}); at most "
                         f"{MAX_RECORDED_POINTS:,} per case are kept in memory and in its record: raise "
                         f"measures.{top}.every (docs/suite-format.md, 'Bounds')")


def _kind(table: Any, file: str, path: str, registry) -> str:
    if not isinstance(table, dict):
        raise SuiteError(file, path, f"expected a table, got {table!r}")
    if "kind" not in table:
        raise SuiteError(file, f"{path}.kind", f"missing; expected one of {registry.names()}")
    kind = _name(table["kind"], file, f"{path}.kind", f"a {registry.kind} name, one of {registry.names()}")
    if kind not in registry:
        raise SuiteError(file, f"{path}.kind", registry.unknown(kind))
    return kind


def _name(value: Any, file: str, path: str, what: str = "a name") -> str:
    """``value`` if it is a non-empty string (a name: of a measure, event, statistic, kind...);
    a :class:`SuiteError` otherwise. Every name is checked with this before it is looked up, so a
    list or a table where a name belongs is a message, never ``TypeError: unhashable type``."""
    if not isinstance(value, str) or not value:
        raise SuiteError(file, path, f"expected {what} (a non-empty string), got {value!r}")
    return value


def _interval(value: Any, file: str, path: str) -> None:
    """``[low, high]``: two finite numbers (checked by the table's type), ``low <= high``."""
    if value is not None and (len(value) != 2 or value[0] > value[1]):
        raise SuiteError(file, path, f"expected [low, high] with low <= high, got {value!r}")


def check_unique_ids(suites: "list[Suite]") -> None:
    """Refuse two suites with the same ``suite.id`` (their records would share one folder and
    ``compare``/``report`` would keep only one of them): a :class:`SuiteError` naming both files.
    The CLI (``run``, ``list``) and the pytest plugin call it on every suite they loaded."""
    seen: dict[str, str] = {}
    for suite in suites:
        first = seen.setdefault(suite.id, suite.file)
        if first != suite.file:
            raise SuiteError(suite.file, "suite.id",
                             f"{suite.id!r} is also the id of {first}; two suite files may not share an id "
                             f"(their records would collide); rename one of them")


def _suite_table(raw: dict, file: str) -> _SuiteTable:
    meta = build(_SuiteTable, raw.get("suite"), file, "suite")
    if not _ID.fullmatch(meta.id):
        raise SuiteError(file, "suite.id", f"expected lower-case letters, digits, '.', '_' or '-', got {meta.id!r}")
    for i, d in enumerate(meta.devices):
        if d not in DEVICES:
            raise SuiteError(file, f"suite.devices[{i}]", f"expected one of {list(DEVICES)}, got {d!r}")
    if not meta.devices:
        raise SuiteError(file, "suite.devices", "expected at least one device")
    if len(set(meta.devices)) != len(meta.devices):
        raise SuiteError(file, "suite.devices", f"expected distinct devices, got {meta.devices!r}")
    if not meta.seeds or len(set(meta.seeds)) != len(meta.seeds):
        raise SuiteError(file, "suite.seeds", f"expected a non-empty list of distinct integers, got {meta.seeds!r}")
    for i, seed in enumerate(meta.seeds):
        if not 0 <= seed < 2 ** 63:
            raise SuiteError(file, f"suite.seeds[{i}]", f"expected an integer in [0, 2**63), got {seed!r}")
    for key in ("claim", "source"):
        if not getattr(meta, key).strip():
            raise SuiteError(file, f"suite.{key}", "expected a non-empty string")
    return meta


def _dtypes(meta: _SuiteTable, file: str) -> dict[str, str]:
    if isinstance(meta.dtype, str):
        table = {d: meta.dtype for d in meta.devices}
    elif isinstance(meta.dtype, dict):
        check_keys(meta.dtype, meta.devices, file, "suite.dtype")
        missing = [d for d in meta.devices if d not in meta.dtype]
        if missing:
            raise SuiteError(file, "suite.dtype", f"no dtype for device(s) {missing}")
        table = dict(meta.dtype)
    else:
        raise SuiteError(file, "suite.dtype", f"expected a dtype name or a table device -> dtype, got {meta.dtype!r}")
    for dev, dt in table.items():
        if dt not in DTYPES:
            raise SuiteError(file, "suite.dtype" + ("" if isinstance(meta.dtype, str) else f".{dev}"),
                             f"expected one of {list(DTYPES)}, got {dt!r}")
    return table


def _measures(raw: Any, file: str, steps: int, event_names: set[str]) -> dict[str, MeasureSpec]:
    if not isinstance(raw, dict) or not raw:
        raise SuiteError(file, "measures", "expected at least one [measures.NAME] table")
    out = {}
    for name, table in raw.items():
        path = f"measures.{name}"
        if not isinstance(table, dict):
            raise SuiteError(file, path, f"expected a table, got {table!r}")
        kind = _name(table["kind"], file, f"{path}.kind", f"a measure name, one of {MEASURES.names()}") \
            if "kind" in table else name
        if kind not in MEASURES:
            raise SuiteError(file, f"{path}.kind" if "kind" in table else path, MEASURES.unknown(kind))
        every = coerce(table.get("every", 1), int, file, f"{path}.every")
        if every < 1:
            raise SuiteError(file, f"{path}.every", f"expected an integer >= 1, got {every}")
        coarse = table.get("coarse", {})
        coarse = coerce(coarse, dict, file, f"{path}.coarse")
        check_keys(coarse, ["until", "every"], file, f"{path}.coarse")
        cu = coerce(coarse.get("until", 0), int, file, f"{path}.coarse.until")
        ce = coerce(coarse.get("every", every), int, file, f"{path}.coarse.every")
        if cu < 0 or ce < 1:
            raise SuiteError(file, f"{path}.coarse", "expected until >= 0 and every >= 1")
        from_event = table.get("from_event")
        if from_event is not None:
            from_event = _name(from_event, file, f"{path}.from_event", "an event name")
        if from_event is not None and from_event not in event_names:
            raise SuiteError(file, f"{path}.from_event", f"expected an event of this suite {sorted(event_names)}, got {from_event!r}")
        if from_event is not None and coarse:
            raise SuiteError(file, f"{path}.coarse", "give 'coarse' or 'from_event', not both")
        measure = build(MEASURES[kind], table, file, path, skip=("kind", "every", "coarse", "from_event"))
        out[name] = MeasureSpec(name, kind, measure, every, cu, ce, from_event)
    return out


def _prediction(table: dict, file: str, path: str, bindable: set[str], measures: dict) -> tuple[str | None, dict, str | None]:
    predict = table.get("predict")
    args = coerce(table.get("args", {}), dict, file, f"{path}.args")
    compare = coerce(table.get("compare"), Literal["ratio", "difference"] | None, file, f"{path}.compare")
    if predict is None:
        if args:
            raise SuiteError(file, f"{path}.args", "args given without a prediction ('predict')")
        if compare is not None:
            raise SuiteError(file, f"{path}.compare", "compare given without a prediction ('predict')")
        return None, {}, None
    if not isinstance(predict, str) or predict not in PREDICTIONS:
        raise SuiteError(file, f"{path}.predict", PREDICTIONS.unknown(predict) if isinstance(predict, str) else
                         f"expected a prediction name (a string), one of {PREDICTIONS.names()}, got {predict!r}")
    args = dict(args)
    needed = arguments(predict)
    check_keys(args, needed, file, f"{path}.args")
    for key, value in args.items():
        if isinstance(value, str):
            if value not in measures:
                raise SuiteError(file, f"{path}.args.{key}",
                                 f"a string names a measure of this suite {sorted(measures)}, got {value!r}")
        else:
            args[key] = coerce(value, float, file, f"{path}.args.{key}")
    for name in needed:
        if name not in args and name not in bindable and name not in measures:
            raise SuiteError(file, f"{path}.predict",
                             f"prediction {predict!r} needs argument {name!r}, which is not in {path}.args, "
                             f"not a hyper-parameter of the optimizer, not an option of the problem "
                             f"and not a measure of this suite")
    return predict, args, compare or "ratio"


def _events(raw: Any, file: str, bindable: set[str], measures: dict) -> dict[str, EventSpec]:
    raw = coerce(raw or {}, dict, file, "events")
    out = {}
    for name, table in raw.items():
        path = f"events.{name}"
        table = coerce(table, dict, file, path)
        check_keys(table, ["measure", "predict", "args", "compare", "above", "below", "round"], file, path)
        if name in ("start", "end"):
            raise SuiteError(file, path, "'start' and 'end' are reserved anchors")
        measure = table.get("measure")
        if measure is not None:
            measure = _name(measure, file, f"{path}.measure", "a measure of this suite")
        if measure is None:  # a predicted step
            if "predict" not in table:
                raise SuiteError(file, f"{path}.measure", "missing; an event needs a measure, or a prediction of its step")
            for key in ("above", "below", "compare"):
                if key in table:
                    raise SuiteError(file, f"{path}.{key}", "a predicted event (no measure) takes no threshold")
            predict, args, _ = _prediction(table, file, path, bindable, measures)
            if any(isinstance(v, str) for v in args.values()):
                raise SuiteError(file, f"{path}.args", "a predicted event's step cannot depend on a measure")
            rounding = coerce(table.get("round", "ceil"), Literal["ceil", "floor", "nearest"], file, f"{path}.round")
            out[name] = EventSpec(name, None, predict, args, None, None, None, rounding)
            continue
        if "round" in table:
            raise SuiteError(file, f"{path}.round", "only a predicted event (no measure) is rounded")
        if measure not in measures:
            raise SuiteError(file, f"{path}.measure", f"expected one of the suite's measures {sorted(measures)}, got {measure!r}")
        predict, args, compare = _prediction(table, file, path, bindable, measures)
        above = coerce(table["above"], float, file, f"{path}.above") if "above" in table else None
        below = coerce(table["below"], float, file, f"{path}.below") if "below" in table else None
        if (above is None) == (below is None):
            raise SuiteError(file, path, "expected exactly one of 'above' or 'below'")
        out[name] = EventSpec(name, measure, predict, args, compare, above, below)
    return out




def _overlays(raw: Any, file: str, bindable: set[str], measures: dict,
              origin: dict[str, str]) -> tuple[Overlay, ...]:
    if not isinstance(raw, list):
        raise SuiteError(file, "overlay", "expected [[overlay]] tables")
    out = []
    for i, table in enumerate(raw):
        path = _origin(origin, f"overlay[{i}]")
        table = coerce(table, dict, file, path)
        check_keys(table, ["measure", "predict", "args"], file, path)
        measure = _name(table.get("measure"), file, f"{path}.measure", f"a measure of this suite {sorted(measures)}")
        if measure not in measures:
            raise SuiteError(file, f"{path}.measure", f"expected a measure of this suite {sorted(measures)}, got {measure!r}")
        if "predict" not in table:
            raise SuiteError(file, f"{path}.predict", "missing; an overlay draws a prediction over its measure")
        predict, args, _ = _prediction(table, file, path, bindable, measures)
        out.append(Overlay(measure, predict, args))
    return tuple(out)


def _window(raw: Any, file: str, path: str, events: dict, steps: int) -> Window:
    """A window, refused at load time when it cannot fit in a run of ``steps`` steps: one that
    starts past the last step, or is longer than the run (windows are never cut short silently)."""
    if raw is None:
        return Window()
    t = build(_WindowTable, raw, file, path)
    if t.anchor not in ("start", "end") and t.anchor not in events:
        raise SuiteError(file, f"{path}.anchor",
                         f"expected 'start', 'end' or an event of this suite {sorted(events)}, got {t.anchor!r}")
    if t.until is not None and t.until not in events:
        raise SuiteError(file, f"{path}.until", f"expected an event of this suite {sorted(events)}, got {t.until!r}")
    if t.length is not None and t.fraction is not None:
        raise SuiteError(file, path, "give 'length' or 'fraction', not both")
    if t.fraction is not None and t.fraction > 1:
        raise SuiteError(file, f"{path}.fraction", f"expected a number in (0, 1], got {t.fraction!r}")
    length = t.length if t.length is not None else (round(t.fraction * steps) if t.fraction is not None else 0)
    size = f"{path}.length" if t.length is not None else f"{path}.fraction"
    run = f"the run's last step {steps} (run.steps)"
    if t.anchor == "end":
        if t.offset > steps:
            raise SuiteError(file, f"{path}.offset",
                             f"the window ends {t.offset} steps before the last step, before step 0 of the run "
                             f"(run.steps = {steps}); expected an offset <= {steps}")
        if length > steps - t.offset:
            raise SuiteError(file, size, f"the window [{steps - t.offset - length}, {steps - t.offset}] starts before "
                             f"step 0: {length} steps ending {t.offset} before {run}; expected a length <= "
                             f"{steps - t.offset}")
    else:
        where = "step 0" if t.anchor == "start" else f"the step event {t.anchor!r} fires on"
        if t.offset > steps:
            raise SuiteError(file, f"{path}.offset",
                             f"the window starts {t.offset} steps after {where}, past {run}; expected an offset "
                             f"<= {steps}")
        if t.offset + length > steps:
            raise SuiteError(file, size,
                             f"the window ends {t.offset + length} steps after {where}, past {run}; expected "
                             f"offset + length <= {steps} (a window is never cut short silently)")
    return Window(t.anchor, t.offset, t.length, t.fraction, t.until)


def _target(value: Any, file: str, path: str, bindable: set[str], measures: dict) -> Target | None:
    """A target or bound as written: a number, or ``{ predict = NAME, args = {...} }``, a
    prediction evaluated once per case (it cannot depend on a measure)."""
    if value is None or not isinstance(value, dict):
        return None if value is None else Target(float(value))
    check_keys(value, ["predict", "args"], file, path)
    if "predict" not in value:
        raise SuiteError(file, f"{path}.predict", "missing; a table here names a prediction")
    predict, args, _ = _prediction(value, file, path, bindable, measures)
    if any(isinstance(v, str) for v in args.values()):
        raise SuiteError(file, f"{path}.args", "a predicted target or bound cannot depend on a measure")
    return Target(predict=predict, args=args)


def _check(t: Any, kind: str, file: str, path: str, bindable: set[str], measures: dict,
           default_target: Target | None):
    """The expectation's :class:`~harness.spec.checks.Check` from its tolerance keys."""
    keys = {}
    for name, key in tolerance_keys().items():
        value = getattr(t, name)
        if key.target:
            value = _target(value, file, f"{path}.{name}", bindable, measures)
        elif name == "interval":
            _interval(value, file, f"{path}.interval")
            value = tuple(value) if value is not None else None
        keys[name] = value
    return CHECKS[kind].from_keys(keys, file, path, default_target)


def _expectation(table: Any, path: str, file: str, bindable: set[str], measures: dict, events: dict,
                 devices: tuple[str, ...], steps: int, sweep: dict | None = None,
                 sweep_axes: dict | None = None) -> Expectation:
    """One ``[[expect]]`` (or, with ``sweep``, ``[[sweep_expect]]``) table at ``path``."""
    sweep_axes = sweep if sweep is not None else (sweep_axes or {})
    tolerance_table, expect_table = _table_types()
    t = build(expect_table, table, file, path)
    if sweep is None:
        for key in ("across", "aggregate"):
            if key in table:
                raise SuiteError(file, f"{path}.{key}", "only a [[sweep_expect]] table aggregates across a sweep")
    else:
        if t.across not in sweep:
            raise SuiteError(file, f"{path}.across", f"expected a sweep axis of this suite {sorted(sweep)}, got {t.across!r}")
        if t.aggregate is None:
            raise SuiteError(file, f"{path}.aggregate",
                             "missing; expected one of 'spearman', 'min', 'max', 'median', 'mean', 'last_over_first'")
        if CHECKS[t.check].statistic_name is not None:
            raise SuiteError(file, f"{path}.check", f"check {t.check!r} is per case; use it in [[expect]]")
    for key in ("name", "measure"):
        if key not in table:
            raise SuiteError(file, f"{path}.{key}", "missing; expected a string")
        _name(table[key], file, f"{path}.{key}", "a name")
    if "check" not in table:
        raise SuiteError(file, f"{path}.check", f"missing; expected one of {list(CHECKS)}")
    if t.measure not in measures:
        raise SuiteError(file, f"{path}.measure", f"expected one of the suite's measures {sorted(measures)}, got {t.measure!r}")
    predict, args, compare = _prediction(table, file, path, bindable, measures)
    default_target = Target({"ratio": 1.0, "difference": 0.0}[compare]) if predict else None
    check = _check(t, t.check, file, path, bindable, measures, default_target)
    if CHECKS[t.check].statistic_name is not None:
        if t.statistic is not None:
            raise SuiteError(file, f"{path}.statistic", f"check {t.check!r} takes no statistic (it measures its own: "
                             f"{CHECKS[t.check].statistic_name})")
        statistic = None
    else:
        if t.statistic is None:
            raise SuiteError(file, f"{path}.statistic", "missing; expected a statistic such as 'median' or 'p90'")
        try:
            statistic = parse_statistic(t.statistic)
        except StatisticSpecError as exc:
            raise SuiteError(file, f"{path}.statistic" + (f".{exc.key}" if exc.key else ""), str(exc)) from None
        if statistic.other is not None and statistic.other not in measures:
            raise SuiteError(file, f"{path}.statistic.with",
                             f"expected one of the suite's measures {sorted(measures)}, got {statistic.other!r}")
    window = _window(t.window, file, f"{path}.window", events, steps)
    on = {}
    for dev, over in (t.on or {}).items():
        if dev not in devices:
            raise SuiteError(file, f"{path}.on.{dev}", f"expected one of the suite's devices {list(devices)}")
        over = build(tolerance_table, over, file, f"{path}.on.{dev}")
        merged = dataclasses.replace(t, **{k: v for k, v in dataclasses.asdict(over).items() if v is not None})
        on[dev] = _check(merged, t.check, file, f"{path}.on.{dev}", bindable, measures, default_target)
    where = {}
    for key, value in (t.where or {}).items():
        if key not in sweep_axes:
            raise SuiteError(file, f"{path}.where.{key}", f"expected a sweep axis of this suite {sorted(sweep_axes)}")
        one = any(same_value(value, v) for v in sweep_axes[key])
        # a list that is not itself one of the axis' values: any of its values (where = { depth = [3, 4] })
        accepted = [value] if one or not isinstance(value, list) or not value else value
        for v in accepted:
            if not any(same_value(v, a) for a in sweep_axes[key]):
                raise SuiteError(file, f"{path}.where.{key}", f"{v!r} is not among the axis' values {sweep_axes[key]}")
        where[key] = tuple(accepted)
    return Expectation(
        name=t.name, measure=t.measure, check=check, predict=predict, args=args, compare=compare,
        statistic=statistic, window=window, on=on, why=t.why, across=t.across, aggregate=t.aggregate,
        allow_divergence=t.allow_divergence, where=where)


def update_rule(suite: Suite, table: dict | None = None) -> Any:
    """The update rule of a suite variant (``suite.at(point)`` for a sweep point's), built from
    its ``[optimizer]`` table (or from ``table``, e.g. a calibration's perturbed copy of it)."""
    return build(OPTIMIZERS[suite.optimizer_kind], suite.optimizer_table if table is None else table,
                 suite.file, "optimizer")


def load_suite(path: str | Path) -> Suite:
    """Read and validate one suite file; raises :class:`SuiteError` on any problem.

    Every check names its key; should one be missing, an exception a check did not anticipate
    (a problem's or a measure's own validation) still comes back as a :class:`SuiteError`
    naming the file, never as a traceback."""
    try:
        return _load_suite(Path(path))
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - a message naming the file, never a traceback
        raise SuiteError(str(path), "", f"cannot be validated: {type(exc).__name__}: {exc}") from exc


def _load_suite(path: Path) -> Suite:
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SuiteError(file, "", f"cannot read the file: {exc.strerror}") from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SuiteError(file, "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(file, "", f"malformed TOML: {exc}") from None
    check_keys(raw, ["schema", "suite", "problem", "optimizer", "run", "sweep", "measures", "events", "expect",
                     "sweep_expect", "overlay"],
               file, "")
    if "schema" not in raw:
        raise SuiteError(file, "schema", f"missing; expected schema = {SCHEMA_VERSION}")
    if type(raw["schema"]) is not int:  # not true (a bool is an int), not 1.0
        raise SuiteError(file, "schema", f"expected the integer {SCHEMA_VERSION}, got {raw['schema']!r}")
    if raw["schema"] != SCHEMA_VERSION:
        raise SuiteError(file, "schema", f"unsupported schema version {raw['schema']!r}; this harness reads {SCHEMA_VERSION}")
    for key in ("suite", "problem", "optimizer", "run", "measures"):
        if key not in raw:
            raise SuiteError(file, key, "missing section")
    for key in ("problem", "optimizer", "run"):
        if not isinstance(raw[key], dict):
            raise SuiteError(file, key, f"expected a table, got {raw[key]!r}")
    spec = read_sweep(raw, file)
    points = spec.points()
    variants = []
    for i, point in enumerate(points):
        expanded, origin = expand_templates(variant(raw, spec, point), file, point)
        try:
            variants.append(_build(expanded, file, data, spec, origin, spec.block_of(i).zip, points))
        except SuiteError as exc:
            if len(points) > 1 and any(a.section != "optimizer" for a in spec.axes):
                at = ", ".join(f"{k}={point_label(v)}" for k, v in point.items())
                raise SuiteError(file, exc.key, f"{exc.message} (at the sweep point {at})") from None
            raise
    return dataclasses.replace(variants[0], variants=tuple(variants))


def _origin(origin: dict[str, str], path: str) -> str:
    """The path of an expanded ``[[...]]`` table as its author wrote it (``expect[2] (r=3)``)."""
    return origin.get(path, path)


def _build(raw: dict, file: str, data: bytes, spec: SweepSpec, origin: dict[str, str], zipped: bool,
           points: list[dict[str, Any]]) -> Suite:
    """One variant (sweep point) of a suite, its shorthand expanded, validated."""
    meta = _suite_table(raw, file)
    dtypes = _dtypes(meta, file)

    pkind = _kind(raw["problem"], file, "problem", PROBLEMS)
    problem = build(PROBLEMS[pkind], raw["problem"], file, "problem", skip=("kind",))

    okind = _kind(raw["optimizer"], file, "optimizer", OPTIMIZERS)
    otable = {k: v for k, v in raw["optimizer"].items() if k != "kind"}
    try:
        rule = build(OPTIMIZERS[okind], otable, file, "optimizer")
    except SuiteError as exc:
        key = exc.key.split(".")[1] if exc.key.count(".") else ""
        axis = next((a for a in spec.axes if a.section == "optimizer" and a.key == key), None)
        if axis is not None and spec.deprecated is None:
            raise SuiteError(file, f"sweep.{axis.dotted}", exc.message) from None
        raise
    sweep = spec.values
    # the names a prediction may bind to: the rule's roles (its hyper-parameters, defaults included),
    # the problem's options, the run's steps and seed, a measurement's step
    bindable = set(roles(rule)) | set(otable) | {f.name for f in dataclasses.fields(PROBLEMS[pkind])} | \
        {"steps", "seed", "step"}

    run = build(_RunTable, raw["run"], file, "run")
    events_raw = coerce(raw.get("events", {}), dict, file, "events")
    measures = _measures(raw["measures"], file, run.steps, set(events_raw))
    _check_bounds(file, run.steps, measures)
    events = _events(events_raw, file, bindable, measures)
    for name, m in measures.items():
        if m.from_event is not None and events[m.from_event].measure == name:
            raise SuiteError(file, f"measures.{name}.from_event", "an event cannot start the measure it is computed from")
    expects = raw.get("expect", [])
    if meta.report_only and (expects or raw.get("sweep_expect")):
        raise SuiteError(file, "suite.report_only", "a report-only suite records measures and asserts nothing: drop its expectations")
    if not meta.report_only and (not isinstance(expects, list) or not expects):
        raise SuiteError(file, "expect", "expected at least one [[expect]] table (or suite.report_only = true)")
    expectations = tuple(_expectation(t, _origin(origin, f"expect[{i}]"), file, bindable, measures, events,
                                      tuple(meta.devices), run.steps, sweep_axes=sweep) for i, t in enumerate(expects))
    sweeps = raw.get("sweep_expect", [])
    if not isinstance(sweeps, list):
        raise SuiteError(file, "sweep_expect", "expected [[sweep_expect]] tables")
    sweep_expectations = tuple(_expectation(t, _origin(origin, f"sweep_expect[{i}]"), file, bindable, measures, events,
                                            tuple(meta.devices), run.steps, sweep) for i, t in enumerate(sweeps))
    names = [e.name for e in expectations + sweep_expectations]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SuiteError(file, "expect", f"expectation names must be distinct; repeated: {sorted(dup)}")
    overlays = _overlays(raw.get("overlay", []), file, bindable, measures, origin)
    stop_event, stop_after = None, 0
    if run.stop is not None:
        stop = build(_StopTable, run.stop, file, "run.stop")
        if stop.event not in events:
            raise SuiteError(file, "run.stop.event", f"expected an event of this suite {sorted(events)}, got {stop.event!r}")
        stop_event, stop_after = stop.event, stop.after
        for kind, group in (("expect", expectations), ("sweep_expect", sweep_expectations)):
            for i, e in enumerate(group):  # the run ends `after` steps past its stop event
                w = e.window
                if w.anchor == stop_event and w.length is not None and w.offset + w.length > stop_after:
                    raise SuiteError(file, f"{_origin(origin, f'{kind}[{i}]')}.window.length",
                                     f"the window ends {w.offset + w.length} steps after {stop_event!r}, but the run "
                                     f"stops {stop_after} steps after it (run.stop.after); expected offset + length "
                                     f"<= {stop_after}")
    return Suite(
        file=file, sha256=hashlib.sha256(data).hexdigest(), id=meta.id, claim=meta.claim, source=meta.source,
        devices=tuple(meta.devices), dtypes=dtypes, seeds=tuple(meta.seeds), matmul_precision=meta.matmul_precision,
        slow=meta.slow, report_only=meta.report_only, problem_kind=pkind, problem=problem, problem_table=dict(raw["problem"]),
        optimizer_kind=okind, optimizer_table=otable, sweep=sweep, steps=run.steps, measures=measures,
        events=events, expectations=expectations, sweep_expectations=sweep_expectations, zip_sweep=zipped,
        stop_event=stop_event, stop_after=stop_after, overlays=overlays, id_labels=spec.id_labels,
        deprecated=spec.deprecated, points=tuple(tuple(p.items()) for p in points))
