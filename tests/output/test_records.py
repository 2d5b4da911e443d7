import json
import math

import pytest

from harness.output.records import RECORD_SCHEMA, read_records, write_json_atomic


def test_atomic_write_never_overwrites(tmp_path):
    p = tmp_path / "a" / "case.json"
    first = write_json_atomic(p, {"schema": RECORD_SCHEMA, "n": 1})
    second = write_json_atomic(p, {"schema": RECORD_SCHEMA, "n": 2})
    assert first == p and second != p
    assert json.loads(first.read_text())["n"] == 1 and json.loads(second.read_text())["n"] == 2
    assert sorted(f.name for f in p.parent.iterdir()) == ["case.2.json", "case.json"]  # no temporary left
    assert sorted(r["n"] for r in read_records(tmp_path, validate=False)) == [1, 2]


def test_non_finite_numbers_become_valid_json(tmp_path):
    p = write_json_atomic(tmp_path / "x.json", {"a": math.nan, "b": [math.inf, -math.inf, 1.0]})
    assert json.loads(p.read_text()) == {"a": None, "b": ["inf", "-inf", 1.0]}


def test_an_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    import harness.output.records as records

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(records.os, "fsync", interrupted)  # killed after the bytes, before the rename
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(tmp_path / "y.json", {"x": list(range(1000))})
    assert list(tmp_path.iterdir()) == []
