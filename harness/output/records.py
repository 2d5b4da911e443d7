"""Result records: one JSON file per case, written atomically, never overwriting.

Layout: ``OUT/<run_id>/<suite_id>/<case_id>.json`` (schema in ``docs/result-schema.md``).
A record is written to a temporary file in the same folder, flushed and fsync'ed, then
hard-linked to its final name (which fails instead of replacing an existing file) and the
temporary name removed; an interrupted run leaves at most a ``.tmp`` file, never a half
record. ``run_id`` is a UTC timestamp plus a random suffix, so runs (and pytest-xdist
workers) never share a folder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ..errors import HarnessError

__all__ = ["RECORD_SCHEMA", "SWEEP_SCHEMA", "SUMMARY_SCHEMA", "CALIBRATION_SCHEMA", "case_record",
           "sweep_record", "summary_record", "calibration_record", "validate_calibration", "read_calibrations", "newest_calibrations", "new_run_id", "write_json_atomic", "write_bytes_replacing", "record_path",
           "read_records", "latest", "record_key", "validate_record", "writable_folder", "writable_file"]

RECORD_SCHEMA = "theory-harness/result/1"
SWEEP_SCHEMA = "theory-harness/sweep/1"
SUMMARY_SCHEMA = "theory-harness/summary/1"
CALIBRATION_SCHEMA = "theory-harness/calibration/1"


def _suite_block(suite: Any) -> dict[str, Any]:
    return {"id": suite.id, "file": suite.file, "sha256": suite.sha256, "claim": suite.claim, "source": suite.source}


def case_record(result: Any, run_id: str) -> dict[str, Any]:
    """The JSON record of one case (a :class:`harness.run.runner.CaseResult`); ``docs/result-schema.md``."""
    c, s = result.case, result.case.suite
    return {
        "schema": RECORD_SCHEMA,
        "run_id": run_id,
        "suite": _suite_block(s),
        "case": {"id": c.id, "params": dict(c.point), "hyper": c.hyper, "seed": c.seed,
                 **({"perturbation": {t: f for t, f in c.perturbation}} if c.perturbation else {}),
                 "device": c.device, "dtype": c.dtype, "steps": s.steps,
                 "problem": {k: v for k, v in s.problem_table.items()},
                 "optimizer": s.optimizer_kind},
        "status": result.status,
        "skipped": result.skipped,
        "diverged_at": result.diverged_at,
        "error": result.error,
        "wall_time_s": result.wall_time_s,
        "info": result.info,
        "environment": result.environment,
        "trajectories": result.trajectories,
        "predictions": result.predictions,
        "events": result.events,
        "expectations": [v.to_dict() for v in result.verdicts],
    }


def sweep_record(suite: Any, key: str, results: list, verdicts: list, run_id: str) -> dict[str, Any]:
    """The JSON record of one sweep group's expectations (``sweep-<group>.json``)."""
    return {"schema": SWEEP_SCHEMA, "run_id": run_id, "suite": _suite_block(suite),
            "group": key, "cases": [r.case.id for r in results],
            "status": "passed" if all(v.passed for v in verdicts) else "failed",
            "expectations": [v.to_dict() for v in verdicts]}


def summary_record(run_id: str, results: list, sweeps: list[tuple[str, str, Any]],
                   shard: dict[str, int] | None = None) -> dict[str, Any]:
    """The run's ``summary.json``: every case's status and verdicts, every sweep verdict
    (``sweeps``: ``(suite id, group id, verdict)``), and the shard a CI job ran."""
    summary = {"schema": SUMMARY_SCHEMA, "run_id": run_id,
               "cases": [{"suite": r.case.suite.id, "case": r.case.id, "status": r.status,
                          "wall_time_s": r.wall_time_s,
                          "expectations": [v.to_dict() for v in r.verdicts]} for r in results],
               "sweeps": [{"suite": sid, "group": key, "expectation": v.to_dict()} for sid, key, v in sweeps]}
    if shard is not None:
        summary["shard"] = shard
    return summary


def calibration_record(cal: Any, run_id: str) -> dict[str, Any]:
    """``calibration.json`` of a :class:`harness.run.calibrate.Calibration`: per expectation the
    nominal spread and, per perturbation, failed/runs; per group the runs with any failure."""
    return {"schema": CALIBRATION_SCHEMA, "run_id": run_id,
            "suite": {"id": cal.suite.id, "file": cal.suite.file, "sha256": cal.suite.sha256},
            "seeds": list(cal.seeds),
            "expectations": [{"expectation": s.expectation,
                              "nominal": {"runs": s.runs, "failed": s.failed, "min": s.min, "median": s.median,
                                          "max": s.max, "smallest_margin": s.smallest_margin},
                              "perturbed": {label: {"runs": n, "failed": k} for label, (k, n) in s.perturbed.items()}}
                             for s in cal.spreads],
            "caught": {label: {"failed_runs": k, "runs": n} for label, (k, n) in cal.caught.items()}}


def new_run_id() -> str:
    """``20261130T170845Z-1e7603``: a UTC timestamp (so ids sort by time) and 3 random bytes."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def _clean(obj: Any) -> Any:
    """JSON has no NaN or infinity: write them as null (values) and strings (never silently)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _file_mode() -> int:
    """The mode an ordinary new file gets (0o666 less the umask); ``mkstemp`` would leave 0o600,
    unreadable to a web server or to the CI user that uploads a report."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _staged(path: Path, data: bytes) -> str:
    """A temporary file beside ``path`` holding ``data``, flushed and fsync'ed, with the mode of an
    ordinary new file; the caller moves it into place (and removes it if that fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write ``payload`` to ``path`` atomically; if ``path`` exists, write ``path`` with a
    numbered suffix instead (an existing record is never replaced). Returns the path written."""
    path = Path(path)
    tmp = _staged(path, json.dumps(_clean(payload), indent=1, allow_nan=False).encode("utf-8"))
    try:
        target, n = path, 1
        while True:
            try:
                os.link(tmp, target)
                break
            except FileExistsError:
                n += 1
                target = path.with_name(f"{path.stem}.{n}{path.suffix}")
        return target
    finally:
        os.unlink(tmp)


def write_bytes_replacing(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, replacing what is there (a report's pages and
    figures): a staged temporary file, then ``os.replace``."""
    path = Path(path)
    tmp = _staged(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def record_path(out: Path, run_id: str, suite_id: str, case_id: str) -> Path:
    """Where a case's record is written: ``OUT/<run_id>/<suite_id>/<case_id>.json``."""
    return Path(out) / run_id / suite_id / f"{case_id}.json"


def writable_folder(path: str | Path, option: str) -> Path:
    """``path`` as a folder this process can write in, created if missing, or a
    :class:`HarnessError` ``PATH: OPTION: expected a writable folder, ...``. Called before any work
    whose results would go there (``run`` trains nothing before its ``--out`` is checked)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HarnessError(f"{path}: {option}: expected a folder to write into, but it is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".theory-harness-probe-"):
            pass
    except OSError as exc:
        raise HarnessError(f"{path}: {option}: expected a writable folder, cannot write there "
                           f"({exc.strerror or exc})") from None
    return path


def writable_file(path: str | Path, option: str) -> Path:
    """``path`` as a file this process can (re)write: not a folder, in a writable folder; else a
    :class:`HarnessError` naming the path and the option."""
    path = Path(path)
    if path.is_dir():
        raise HarnessError(f"{path}: {option}: expected a file to write, but it is a folder")
    writable_folder(path.parent, option)
    return path


_STATUSES = {RECORD_SCHEMA: ("passed", "failed", "skipped"), SWEEP_SCHEMA: ("passed", "failed")}
_SUPPORTED = ("theory-harness/result/", "theory-harness/sweep/")


def validate_record(record: Any, file: str | Path, decode: bool = False) -> None:
    """Check a case record (``theory-harness/result/1``) or a sweep record (``sweep/1``) against
    ``docs/result-schema.md``: every field that ``compare``, ``report`` and the figures read, with
    its type (a bool is not a number), each trajectory's ``steps`` and ``values`` of one length.
    Records arrive from other commits and CI artifacts; a wrong shape is a :class:`HarnessError`
    ``FILE: key.path: expected ..., got ...``, never a ``KeyError`` later. Fields the schema marks
    optional may be absent; none may have the wrong type. ``decode``: turn the writer's "inf" /
    "-inf" in an expectation's numbers back into floats, in place (what ``read_records`` hands on)."""
    file = str(file)

    def number(v: Any) -> Any:
        return float(v) if decode and isinstance(v, str) else v

    def fail(path: str, expected: str, value: Any = ..., missing: bool = False) -> None:
        if missing:
            raise HarnessError(f"{file}: {path}: missing; expected {expected}")
        text = repr(value)
        raise HarnessError(f"{file}: {path}: expected {expected}, got {text[:80] + '...' if len(text) > 80 else text}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_step(v: Any) -> bool:
        return is_int(v) and 0 <= v < 2 ** 63

    def is_num(v: Any) -> bool:  # JSON has no infinity: the writer spells it "inf" / "-inf"
        return (isinstance(v, (int, float)) and not isinstance(v, bool)) or (isinstance(v, str) and v in ("inf", "-inf"))

    kinds = {"str": (lambda v: isinstance(v, str), "a string"), "int": (is_int, "an integer"),
             "step": (is_step, "a step (an integer >= 0)"),
             "num": (is_num, "a number"), "bool": (lambda v: isinstance(v, bool), "true or false"),
             "dict": (lambda v: isinstance(v, dict), "an object"), "list": (lambda v: isinstance(v, list), "a list")}

    def field(obj: dict, path: str, key: str, kind: str, required: bool = False, null: bool = False) -> Any:
        where = f"{path}.{key}" if path else key
        ok, what = kinds[kind]
        what = what + " or null" if null else what
        if key not in obj:
            if required:
                fail(where, what, missing=True)
            return None
        value = obj[key]
        if not (ok(value) or (null and value is None)):
            fail(where, what, value)
        if kind == "num":
            value = obj[key] = number(value)
        return value

    def series(obj: dict, path: str, values_null: bool = True) -> None:
        steps = field(obj, path, "steps", "list", required=True)
        values = field(obj, path, "values", "list", required=True)
        for i, s in enumerate(steps):
            if not is_step(s):
                fail(f"{path}.steps[{i}]", "an integer step >= 0", s)
        for i, v in enumerate(values):
            if not (is_num(v) or (values_null and v is None)):
                fail(f"{path}.values[{i}]", "a number or null", v)
        if len(steps) != len(values):
            fail(f"{path}.values", f"one value per step ({len(steps)} steps)", f"{len(values)} values")

    def expectation(e: Any, path: str) -> None:
        if not isinstance(e, dict):
            fail(path, "an object (one expectation's verdict)", e)
        field(e, path, "name", "str", required=True)
        field(e, path, "passed", "bool", required=True)
        field(e, path, "measure", "str", required=True)
        for key in ("check", "statistic", "tolerance", "message", "predict", "compare", "prediction"):
            field(e, path, key, "str", null=True)
        for key in ("measured", "measured_raw", "predicted", "margin", "threshold"):
            field(e, path, key, "num", null=True)
        window = field(e, path, "window", "list", null=True)
        if window is not None and (len(window) != 2 or not all(map(is_step, window)) or window[0] > window[1]):
            fail(f"{path}.window", "[first step, last step] (two integers, first <= last) or null", window)
        limits = field(e, path, "limits", "list", null=True)
        if limits is not None and (len(limits) != 2 or not all(x is None or is_num(x) for x in limits)):
            fail(f"{path}.limits", "[low, high] (numbers or null) or null", limits)
        if limits is not None:
            limits[:] = map(number, limits)
        for i, pair in enumerate(field(e, path, "last", "list") or []):
            if not (isinstance(pair, list) and len(pair) == 2 and is_step(pair[0]) and (pair[1] is None or is_num(pair[1]))):
                fail(f"{path}.last[{i}]", "[step, value]", pair)
            pair[1] = number(pair[1])
        per_case = field(e, path, "per_case", "dict", null=True) or {}
        for case, value in per_case.items():
            if not (value is None or is_num(value)):
                fail(f"{path}.per_case.{case}", "a number or null", value)
            per_case[case] = number(value)

    if not isinstance(record, dict):
        fail("", "a JSON object (a record)", record)
    schema = field(record, "", "schema", "str", required=True)
    if schema not in _STATUSES:
        fail("schema", f"one of {sorted(_STATUSES)} (this harness reads these versions)", schema)
    field(record, "", "run_id", "str", required=True)
    suite = field(record, "", "suite", "dict", required=True)
    field(suite, "suite", "id", "str", required=True)
    for key in ("file", "sha256", "claim", "source"):
        field(suite, "suite", key, "str", null=True)
    status = field(record, "", "status", "str", required=True)
    if status not in _STATUSES[schema]:
        fail("status", f"one of {list(_STATUSES[schema])}", status)
    expectations = field(record, "", "expectations", "list", required=True)
    names: set[str] = set()
    for i, e in enumerate(expectations):
        expectation(e, f"expectations[{i}]")
        if e["name"] in names:  # compare keys verdicts by name: a repeated one would hide the other
            fail(f"expectations[{i}].name", "a name distinct from the other expectations'", e["name"])
        names.add(e["name"])
    if schema == SWEEP_SCHEMA:
        field(record, "", "group", "str", required=True)
        for i, case_id in enumerate(field(record, "", "cases", "list") or []):
            if not isinstance(case_id, str):
                fail(f"cases[{i}]", "a case id (a string)", case_id)
        return
    case = field(record, "", "case", "dict", required=True)
    field(case, "case", "id", "str", required=True)
    for key in ("params", "hyper", "problem"):
        field(case, "case", key, "dict", null=True)
    field(case, "case", "seed", "int", null=True)
    field(case, "case", "steps", "step", null=True)
    for key in ("device", "dtype", "optimizer"):
        field(case, "case", key, "str", null=True)
    field(record, "", "skipped", "str", null=True)
    field(record, "", "error", "str", null=True)
    field(record, "", "diverged_at", "step", null=True)
    field(record, "", "wall_time_s", "num")
    info = field(record, "", "info", "dict", null=True) or {}
    field(info, "info", "last_step", "step", null=True)
    env = field(record, "", "environment", "dict", null=True) or {}
    git = field(env, "environment", "git", "dict", null=True) or {}
    field(git, "environment.git", "commit", "str", null=True)
    field(git, "environment.git", "dirty", "bool", null=True)
    for name, traj in (field(record, "", "trajectories", "dict", null=True) or {}).items():
        path = f"trajectories.{name}"
        if not isinstance(traj, dict):
            fail(path, "an object with steps and values", traj)
        series(traj, path)
        field(traj, path, "aux", "dict", null=True)
    for name, pred in (field(record, "", "predictions", "dict", null=True) or {}).items():
        path = f"predictions.{name}"
        if not isinstance(pred, dict):
            fail(path, "an object with measure, steps and values", pred)
        field(pred, path, "measure", "str", required=True)
        field(pred, path, "predict", "str", null=True)
        field(pred, path, "args", "dict", null=True)
        series(pred, path)
    for name, step in (field(record, "", "events", "dict", null=True) or {}).items():
        if not (step is None or is_step(step)):
            fail(f"events.{name}", "a step (an integer >= 0) or null", step)


def read_records(*paths: str | Path, schemas: Iterable[str] = (RECORD_SCHEMA,), validate: bool = True) -> list[dict]:
    """Every record of the given ``schemas`` under the given files or folders (temporary files
    skipped), each checked by :func:`validate_record` (a calibration by :func:`validate_calibration`)
    unless ``validate`` is false. A path that
    does not exist, a file that is not JSON, a record of the wrong shape, or a record of a
    version this harness does not read is a :class:`HarnessError` naming the file (and the field).
    Other JSON files in a folder (``summary.json``) are passed over; a file named explicitly must
    be a record."""
    schemas = set(schemas)
    found: list[dict] = []
    for p in map(Path, paths):
        if not p.exists():
            raise HarnessError(f"{p}: no such file or folder")
        named = p.is_file()
        files = [p] if named else sorted(f for f in p.rglob("*.json") if f.is_file())
        for f in files:
            if f.name.startswith(".") and not named:
                continue
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise HarnessError(f"{f}: not a readable JSON record ({exc})") from None
            schema = data.get("schema") if isinstance(data, dict) else None
            if schema in schemas:
                if validate and schema == CALIBRATION_SCHEMA:
                    validate_calibration(data, f)
                elif validate:
                    validate_record(data, f, decode=True)
                data["_path"] = str(f)
                found.append(data)
            elif isinstance(schema, str) and schema.startswith(_SUPPORTED) and schema not in _STATUSES:
                raise HarnessError(f"{f}: schema: unsupported record version {schema!r}; this harness reads "
                                   f"{sorted(schemas)}")
            elif named:
                raise HarnessError(f"{f}: schema: expected a result record, one of {sorted(schemas)}, got "
                                   f"{schema!r}")
    return found


def validate_calibration(record: Any, file: str | Path) -> None:
    """Check a ``calibration.json`` (``theory-harness/calibration/1``): every field the report
    reads, with its type; a wrong shape is a :class:`HarnessError` ``FILE: key.path: ...``."""
    def need(ok: bool, path: str, what: str, value: Any) -> None:
        if not ok:
            text = repr(value)
            raise HarnessError(f"{file}: {path}: expected {what}, got {text[:80] + '...' if len(text) > 80 else text}")

    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    is_num = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))  # noqa: E731
    counts = lambda v: isinstance(v, dict) and all(is_int(v.get(k)) for k in v) and bool(v)  # noqa: E731
    need(isinstance(record, dict), "", "a JSON object (a calibration)", record)
    need(record.get("schema") == CALIBRATION_SCHEMA, "schema", repr(CALIBRATION_SCHEMA), record.get("schema"))
    need(isinstance(record.get("run_id"), str), "run_id", "a string", record.get("run_id"))
    suite = record.get("suite")
    need(isinstance(suite, dict) and isinstance(suite.get("id"), str), "suite.id", "a string", suite)
    seeds = record.get("seeds")
    need(isinstance(seeds, list) and all(map(is_int, seeds)), "seeds", "a list of integers", seeds)
    rows = record.get("expectations")
    need(isinstance(rows, list), "expectations", "a list", rows)
    for i, row in enumerate(rows):
        path = f"expectations[{i}]"
        need(isinstance(row, dict) and isinstance(row.get("expectation"), str), f"{path}.expectation", "a string", row)
        nominal = row.get("nominal")
        need(isinstance(nominal, dict), f"{path}.nominal", "an object", nominal)
        for key in ("runs", "failed"):
            need(is_int(nominal.get(key)), f"{path}.nominal.{key}", "an integer", nominal.get(key))
        for key in ("min", "median", "max", "smallest_margin"):
            need(is_num(nominal.get(key)), f"{path}.nominal.{key}", "a number or null", nominal.get(key))
        perturbed = row.get("perturbed", {})
        need(isinstance(perturbed, dict), f"{path}.perturbed", "an object", perturbed)
        for label, c in perturbed.items():
            need(counts(c) and set(c) == {"runs", "failed"}, f"{path}.perturbed.{label}", "{runs, failed} integers", c)
    caught = record.get("caught")
    need(isinstance(caught, dict), "caught", "an object", caught)
    for label, c in caught.items():
        need(counts(c) and set(c) == {"failed_runs", "runs"}, f"caught.{label}", "{failed_runs, runs} integers", c)


def newest_calibrations(records: Iterable[dict]) -> list[dict]:
    """The newest (by run id) ``calibration.json`` per suite among ``records`` (other schemas
    passed over), ordered by suite id."""
    newest: dict[str, dict] = {}
    for data in records:
        if data.get("schema") != CALIBRATION_SCHEMA:
            continue
        old = newest.get(data["suite"]["id"])
        if old is None or data["run_id"] > old["run_id"]:
            newest[data["suite"]["id"]] = data
    return [newest[k] for k in sorted(newest)]


def read_calibrations(*paths: str | Path) -> list[dict]:
    """Every ``calibration.json`` (``theory-harness/calibration/1``) under the given files or
    folders, validated, the newest per suite (:func:`newest_calibrations`)."""
    return newest_calibrations(read_records(*paths, schemas=(CALIBRATION_SCHEMA,)))


def record_key(record: dict) -> tuple[str, str]:
    """``(suite id, case id)`` of a case record, ``(suite id, group id)`` of a sweep record."""
    try:
        return record["suite"]["id"], record["group"] if record["schema"] == SWEEP_SCHEMA else record["case"]["id"]
    except (KeyError, TypeError):
        raise HarnessError(f"{record.get('_path', '?')}: a record without suite.id and case.id/group") from None


def latest(records: list[dict]) -> list[dict]:
    """One record per case or sweep group: the one of the latest run (run ids start with a UTC
    timestamp), so a folder holding several runs reads as its newest results."""
    best: dict[tuple[str, str, str], dict] = {}
    for r in records:
        key = (r["schema"], *record_key(r))
        if key not in best or str(r.get("run_id", "")) >= str(best[key].get("run_id", "")):
            best[key] = r
    return list(best.values())
