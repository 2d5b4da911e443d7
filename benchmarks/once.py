"""Every asv benchmark body once, outside asv and without timing anything that is asserted:
what the CI quick check (``tests/test_benchmarks.py``) and ``scripts/gpu-check`` (the CUDA rows)
run.

The rows come from asv's own discovery (``asv_runner``), so every (benchmark, parameters) pair
that ``asv run`` would run is here, and a row is skipped by asv's rule only: its ``setup``
raised ``NotImplementedError`` (no CUDA device). Whatever the body raises, NotImplementedError
included, is a failure, as it is in asv (a failed row with a traceback); a ``track_`` body
must return a number that is not NaN.

    python -m benchmarks.once [--device cuda] [--match REGEX] [--quick] [--out FILE.jsonl]

prints one line per row and exits 1 if any row failed, 2 if no row matched, 0 otherwise.
``--out`` appends one JSON object per row as it finishes (kept if the run is killed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import math
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One (benchmark, parameter combination) as asv runs it."""

    bench: object  # an asv_runner Benchmark (one instance of the class per method, as in asv)
    index: int  # the parameter combination's index, asv's ``param_idx``
    values: tuple  # the raw parameter values

    @property
    def name(self) -> str:
        return self.bench.name

    @property
    def label(self) -> str:
        return f"{self.name}({', '.join(map(repr, self.values))})" if self.values else self.name


def rows(device: str | None = None, match: str | None = None) -> list[Row]:
    """Every row asv would run, in asv's order; with ``device``, those whose parameters name it
    (``"cpu"``: those that name no ``"cuda"``); with ``match``, those whose label matches."""
    from asv_runner.discovery import disc_benchmarks

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    out = []
    for bench in sorted(disc_benchmarks(str(ROOT / "benchmarks")), key=lambda b: b.name):
        for i, values in enumerate(itertools.product(*bench._params)):
            out.append(Row(bench, i, tuple(values)))
    if device == "cpu":
        out = [r for r in out if "cuda" not in r.values]
    elif device is not None:
        out = [r for r in out if device in r.values]
    if match:
        out = [r for r in out if re.search(match, r.label)]
    return out


class Skipped(Exception):
    """The row's setup refused it (asv shows the row as skipped)."""


def run_once(row: Row):
    """Set the row up, call its body once, tear it down; return the body's value. Raises
    :class:`Skipped` when ``setup`` refused the row, and whatever the body raised otherwise."""
    bench = row.bench
    if getattr(bench, "type", None) == "timeraw":
        raise TypeError(f"{row.name}: timeraw benchmarks are not run by benchmarks.once")
    bench.set_param_idx(row.index)
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        skipped = bench.do_setup()  # asv's own rule: NotImplementedError in setup skips
    if skipped:
        reason = said.getvalue().strip().removeprefix("asv: skipped:").strip()
        raise Skipped(reason or "skipped by setup")
    try:
        value = bench.func(*bench._current_params)
    finally:
        bench.do_teardown()
        instance = getattr(bench.func, "__self__", None)
        if instance is not None:  # drop what setup built (graphs, data): asv would end the process
            vars(instance).clear()
    if row.name.split(".")[-1].startswith("track_"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{row.label}: a track_ benchmark returned {value!r}, not a number")
        if math.isnan(value):
            raise ValueError(f"{row.label}: returned NaN (asv shows the row as n/a)")
    return value


def quick() -> None:
    """The CI quick settings: one timed repetition in ratio benchmarks, two trajectory steps."""
    from . import common

    common.REPEAT = 1
    for row in rows():
        cls = type(getattr(row.bench.func, "__self__", None))
        if hasattr(cls, "steps"):
            cls.steps = 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run every asv benchmark body once (no timing statistics).")
    p.add_argument("--device", help="only rows whose parameters name this device (cpu: those that name no cuda)")
    p.add_argument("--match", help="only rows whose label (name(params)) matches this regular expression")
    p.add_argument("--quick", action="store_true", help="one repetition in ratio benchmarks, two trajectory steps")
    p.add_argument("--out", help="append one JSON line per row to this file")
    args = p.parse_args(argv)
    if args.quick:
        quick()
    selected = rows(args.device, args.match)
    if not selected:
        print(f"no benchmark row matches device={args.device!r} match={args.match!r}", file=sys.stderr)
        return 2
    counts = {"passed": 0, "skipped": 0, "failed": 0}
    sink = open(args.out, "a", encoding="utf-8") if args.out else None
    try:
        for row in selected:
            t0 = time.perf_counter()
            entry = {"name": row.name, "params": [repr(v) for v in row.values]}
            try:
                value = run_once(row)
            except Skipped as exc:
                entry.update(status="skipped", reason=str(exc))
            except Exception as exc:  # noqa: BLE001 - a failing body is this row's result
                entry.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            else:
                entry.update(status="passed", value=value if isinstance(value, (int, float)) else None)
            entry["seconds"] = round(time.perf_counter() - t0, 4)
            counts[entry["status"]] += 1
            detail = {"passed": f"value {entry.get('value')}", "skipped": entry.get("reason"),
                      "failed": entry.get("error")}[entry["status"]]
            print(f"{entry['status'].upper():7} {row.label}  {entry['seconds']:.3f} s  {detail}", flush=True)
            if entry["status"] == "failed":
                print(entry["traceback"], file=sys.stderr, flush=True)
            if sink:
                sink.write(json.dumps(entry) + "\n")
                sink.flush()
    finally:
        if sink:
            sink.close()
    print(f"{len(selected)} rows: {counts['passed']} passed, {counts['skipped']} skipped, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
