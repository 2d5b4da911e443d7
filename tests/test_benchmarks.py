"""The asv benchmarks import and every body runs once for every parameter combination asv would
run (asv's quick mode, in this environment), without timing anything: speed is for asv and
pytest-benchmark, never for asserts. A body that raises fails here as it fails in asv; only a
``setup`` that raises NotImplementedError (a CUDA row without a GPU) is a skip, as in asv."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

pytest.importorskip("asv_runner")  # asv's own discovery enumerates the rows (the test extra installs asv)

from benchmarks import bench_suites, common, once  # noqa: E402

ROWS = once.rows()


def test_rows_are_every_parameter_combination_of_every_benchmark():
    """asv's discovery, not a list of our own: each benchmark contributes the product of its
    parameter lists, and the suites' classes, the kernels' and the CUDA rows are all there."""
    from math import prod

    by_name = {}
    for row in ROWS:
        by_name.setdefault(row.name, []).append(row.values)
    for row in ROWS:
        assert len(by_name[row.name]) == prod(len(p) for p in row.bench._params), row.name
    names = set(by_name)
    assert {"bench_suites.SuiteMetric.track_first_expectation", "bench_suites.SuiteStep.time_one_step",
            "bench_curvature.Kernels.time_gradient", "bench_curvature.Flops.track_hvp_reused_flops_over_gradient"} <= names
    assert ("mlp", "cuda") in by_name["bench_curvature.Kernels.time_gradient"]
    assert not [n for n in names if n.startswith("once.")]  # the runner itself defines no benchmark


def test_suite_metrics_name_suites_that_assert_a_statistic():
    assert set(bench_suites.METRIC_IDS) <= set(bench_suites.IDS)
    silent = [n for n in bench_suites.METRIC_IDS if not bench_suites.asserts_a_statistic(n)]
    assert not silent, f"report-only suites have no statistic to track: {silent}"
    assert not bench_suites.asserts_a_statistic("relu_gray_zone")  # the check can say no


@pytest.mark.parametrize("row", ROWS, ids=[r.label for r in ROWS])
def test_benchmark_runs_once(row, monkeypatch):
    """Each body once, on the reference models with 250 of their 2,000 samples: this checks that a
    body runs and returns a number (asv measures it at full size), and the full-size CNN rows
    took most of CI's time."""
    monkeypatch.setattr(common, "REPEAT", 1)
    monkeypatch.setattr(common, "N_SAMPLES", 250)
    cls = type(getattr(row.bench.func, "__self__", None))
    if hasattr(cls, "steps"):  # a trajectory benchmark: two steps are enough to run it once
        monkeypatch.setattr(cls, "steps", 2)
    try:
        once.run_once(row)  # a track_ body must return a number, not None or NaN (checked there)
    except once.Skipped as exc:  # setup refused the row: what asv reports as skipped
        assert "cuda" in row.values, f"only CUDA rows may be skipped, not {row.label}: {exc}"
        pytest.skip(str(exc))


def test_asv_forks_its_runs_from_one_import_that_starts_no_cuda():
    """asv.conf.json's forkserver: a fresh interpreter per row (import torch, scipy, the harness:
    about 4.6 s here) cost 16 of a quick run's minutes over its 200-odd rows; a forked run is safe
    on a GPU only if importing the benchmarks leaves CUDA uninitialised."""
    import json

    assert json.loads((ROOT / "asv.conf.json").read_text(encoding="utf-8"))["launch_method"] == "forkserver"
    code = ("import torch, benchmarks.bench_curvature, benchmarks.bench_suites, benchmarks.once; "
            "print(torch.cuda.is_initialized())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stdout + proc.stderr


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
