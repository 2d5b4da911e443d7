"""Result records: one JSON file per case, written atomically, never overwriting.

Layout: ``OUT/<run_id>/<suite_id>/<case_id>.json`` (schema in ``docs/result-schema.md``).
A record is written to a temporary file in the same folder, flushed and fsync'ed, then
hard-linked to its final name (which fails instead of replacing an existing file) and the
temporary name removed; an interrupted run leaves at most a ``.tmp`` file, never a half
record. ``run_id`` is a UTC timestamp plus a random suffix, so runs (and pytest-xdist
workers) never share a folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["RECORD_SCHEMA", "SWEEP_SCHEMA", "new_run_id", "write_json_atomic", "record_path", "read_records"]

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


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write ``payload`` to ``path`` atomically; if ``path`` exists, write ``path`` with a
    numbered suffix instead (an existing record is never replaced). Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(payload), indent=1, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
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


def record_path(out: Path, run_id: str, suite_id: str, case_id: str) -> Path:
    return Path(out) / run_id / suite_id / f"{case_id}.json"


def read_records(*paths: str | Path) -> list[dict]:
    """Every result record under the given files or folders (temporary files skipped)."""
    found: list[dict] = []
    for p in map(Path, paths):
        files = [p] if p.is_file() else sorted(p.rglob("*.json"))
        for f in files:
            if f.name.startswith("."):
                continue
            data = json.loads(f.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("schema") == RECORD_SCHEMA:
                data["_path"] = str(f)
                found.append(data)
    return found
