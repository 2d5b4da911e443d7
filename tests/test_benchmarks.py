"""The asv benchmarks import and run once (asv's quick mode, in this environment), without
timing anything: speed is for asv and pytest-benchmark, never for asserts."""

import inspect
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_curvature, bench_suites, common  # noqa: E402

CLASSES = [c for m in (bench_curvature, bench_suites) for name, c in inspect.getmembers(m, inspect.isclass)
           if c.__module__ == m.__name__ and hasattr(c, "params") and name == c.__name__ and not name.startswith("_")]
# the suites' own theory metrics re-run the suites, which this job already runs as pytest items
QUICK_SKIP = {"SuiteMetric": "re-runs the suites, which run as pytest items in this job"}
PREFIXES = ("time_", "peakmem_", "track_")


def _cases():
    for cls in CLASSES:
        for point in itertools.product(*cls.params):
            for name in sorted(n for n in dir(cls) if n.startswith(PREFIXES)):
                yield pytest.param(cls, name, point, id=f"{cls.__name__}.{name}-{'-'.join(map(str, point))}")


@pytest.mark.parametrize("cls,name,point", list(_cases()))
def test_benchmark_runs_once(cls, name, point, monkeypatch):
    if cls.__name__ in QUICK_SKIP:
        pytest.skip(QUICK_SKIP[cls.__name__])
    monkeypatch.setattr(common, "REPEAT", 1)
    if hasattr(cls, "steps"):  # a trajectory benchmark: two steps are enough to run it once
        monkeypatch.setattr(cls, "steps", 2)
    bench = cls()
    try:
        if hasattr(bench, "setup"):
            bench.setup(*point)
        value = getattr(bench, name)(*point)
    except NotImplementedError as exc:  # what asv reports as a skipped row (no CUDA, report-only suite)
        pytest.skip(str(exc))
    if name.startswith("track_"):
        assert value == value and value is not None  # a number, not NaN


@pytest.mark.skipif(shutil.which("asv") is None, reason="asv is not installed")
def test_asv_discovers_the_benchmarks():
    proc = subprocess.run(["asv", "check", "--python=same"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _asv_index() -> str:
    asv = pytest.importorskip("asv")
    return (Path(asv.__file__).parent / "www" / "index.html").read_text(encoding="utf-8")


def test_offline_html_serves_every_asv_dependency_locally(tmp_path):
    """Every CDN script and style sheet of the installed asv's report page is rewritten to a
    vendored file that exists, and the page then names no CDN; an unknown address is exit 2."""
    from benchmarks import offline_html

    (tmp_path / "index.html").write_text(_asv_index(), encoding="utf-8")
    assert offline_html.main([str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert not re.search(r'<(script|link)\b[^>]*(src|href)="https?://', page), "a dependency still comes from the network"
    for ref in re.findall(r'(?:src|href)="(vendor/[^"]+)"', page):
        assert (tmp_path / ref).is_file(), ref
    assert "integrity=" not in page

    (tmp_path / "index.html").write_text('<script src="https://cdn.example/new-lib.js"></script>', encoding="utf-8")
    assert offline_html.main([str(tmp_path)]) == 2
    assert offline_html.main([str(tmp_path / "missing")]) == 2
