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

from .errors import HarnessError

__all__ = ["RECORD_SCHEMA", "SWEEP_SCHEMA", "new_run_id", "write_json_atomic", "write_bytes_replacing", "record_path",
           "read_records", "latest", "record_key"]

RECORD_SCHEMA = "theory-harness/result/1"
SWEEP_SCHEMA = "theory-harness/sweep/1"


def new_run_id() -> str:
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
    return Path(out) / run_id / suite_id / f"{case_id}.json"


def read_records(*paths: str | Path, schemas: Iterable[str] = (RECORD_SCHEMA,)) -> list[dict]:
    """Every record of the given ``schemas`` under the given files or folders (temporary files
    skipped). A path that does not exist or a file that is not JSON is a :class:`HarnessError`
    naming the file."""
    schemas = set(schemas)
    found: list[dict] = []
    for p in map(Path, paths):
        if not p.exists():
            raise HarnessError(f"{p}: no such file or folder")
        files = [p] if p.is_file() else sorted(p.rglob("*.json"))
        for f in files:
            if f.name.startswith("."):
                continue
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise HarnessError(f"{f}: not a readable JSON record ({exc})") from None
            if isinstance(data, dict) and data.get("schema") in schemas:
                data["_path"] = str(f)
                found.append(data)
    return found


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
