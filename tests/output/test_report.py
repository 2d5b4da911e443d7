"""theory-harness report: the page, its figures, the browser check, and bad input."""

import io
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest
from matplotlib.image import imread

from harness.cli import main
from harness.output.figures import case_figure, panel_measures
from harness.output.figures import _zoom_range  # noqa: PLC2701  (the zoom rule is part of what a report shows)
from harness.output.records import read_records
from harness.output.report import build_report

from suite_text import SWEEP, VALID, write

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One run of two tiny suites on every declared device: one passes (with a sweep), one has a
    failing expectation, and the CUDA cases are skipped on a machine without a GPU."""
    tmp = tmp_path_factory.mktemp("report")
    write(tmp, VALID + SWEEP.replace("BOUND", "0.0"), "passing.toml")
    failing = VALID.replace('id = "test.tiny"', 'id = "test.tiny_failing"').replace("bound = 0.9", "bound = 0.3")
    write(tmp, failing, "failing.toml")
    code = main(["run", str(tmp / "passing.toml"), str(tmp / "failing.toml"), "--out", str(tmp / "results"),
                 "--device", "all"])
    assert code == 1  # the failing suite fails
    return tmp / "results"


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("page")
    return build_report([results], out), out


def _figure_srcs(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def _figure_files(report) -> list[Path]:
    """The figure files the report's page shows, in page order."""
    built, out = report
    return [out / unquote(src) for src in _figure_srcs(built.index.read_text())]


def test_one_figure_per_case_with_trajectories_or_sweep_group(results, report):
    built, _ = report
    records = read_records(results)
    ran = [r for r in records if r["trajectories"]]
    sweeps = list(results.rglob("sweep-*.json"))
    assert len(ran) == 8 and len(sweeps) == 2  # 2 suites x 2 lr x 2 seeds on the CPU; 2 seeds' sweep groups
    assert len(built.figures) == len(ran) + len(sweeps)
    assert len(_figure_files(report)) == len(built.figures)


def test_figures_get_the_file_mode_of_any_new_file(report):
    umask = os.umask(0)
    os.umask(umask)
    for path in _figure_files(report):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, not mkstemp's 0o600


def test_figures_are_whole_pngs(report):
    for path in _figure_files(report):
        data = path.read_bytes()
        assert data.startswith(PNG)
        assert imread(io.BytesIO(data), format="png").shape[0] > 100  # decodes whole (a truncated file raises)


def test_report_tallies_the_cases_by_outcome(report):
    built, _ = report
    assert built.cases == 16 and built.failed == 2 and built.skipped == 8


def _page(report) -> str:
    return report[0].index.read_text()


def test_page_lists_the_failed_cases(report):
    page = _page(report)
    assert "<h2>Failures</h2>" in page and "test.tiny_failing [lr=0.2-seed=0-cpu]" in page
    assert page.count('class="fail">FAILED') >= 2


def test_page_gives_the_reason_a_case_was_skipped(report):
    assert "CUDA is not available on this machine" in _page(report)


def test_page_captions_the_statistic_against_its_prediction_with_the_tolerance(report):
    page = _page(report)
    # the failing case's caption: statistic of the measure against its prediction, tolerance, signed margin
    assert "max of lambda_max / gd_edge" in page and "&lt;= 0.3" in page


def test_page_shows_a_negative_margin(report):
    assert re.search(r"<td>-0\.\d+</td>", _page(report))  # a negative margin is shown


def test_page_describes_the_environment(report):
    page = _page(report)
    assert "torch " in page and "matmul precision highest" in page and "commit " in page


def test_page_needs_nothing_from_the_network(report):
    page = report[0].index.read_text()
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    for attr in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert attr.startswith(("figures/", "#")), attr


def test_predictions_are_recorded_at_every_measurement(results):
    rec = next(r for r in read_records(results) if r["trajectories"] and r["suite"]["id"] == "test.tiny")
    pred = rec["predictions"]["gd_edge on lambda_max"]
    assert pred["steps"] == rec["trajectories"]["lambda_max"]["steps"]
    lr = rec["case"]["hyper"]["lr"]
    assert pred["values"] == pytest.approx([2 / lr] * len(pred["steps"]))
    sharp = next(e for e in rec["expectations"] if e["name"] == "sharpness_below_edge")
    assert sharp["limits"] == [None, 0.9] and sharp["prediction"] == "gd_edge on lambda_max"
    reach = next(e for e in rec["expectations"] if e["name"] == "loss_falls")
    assert reach["threshold"] == 1e-3 and reach["limits"] == [None, 60.0]


def test_no_figure_for_a_case_without_trajectories(results):
    skipped = next(r for r in read_records(results) if r["status"] == "skipped")
    assert case_figure(skipped) is None and panel_measures(skipped) == []


def test_zoom_panel_only_when_the_windows_are_a_small_part_of_the_range():
    steps = list(range(0, 100))
    values = [20.0 - 19 * min(s, 10) / 10 for s in steps]  # falls from 20 to 1, then a plateau
    record = {"trajectories": {"r": {"steps": steps, "values": values, "aux": {}}},
              "predictions": {"p": {"measure": "r", "steps": steps, "values": [1.0] * 100}},
              "info": {"last_step": 99},
              "expectations": [{"name": "plateau", "measure": "r", "predict": "p", "prediction": "p",
                                "compare": "difference", "statistic": "max_abs", "limits": [None, 0.05],
                                "window": [40, 60], "passed": True}]}
    lo, hi = _zoom_range(record, "r", 99)
    assert lo < 0.95 and 1.05 < hi < 2
    record["expectations"][0]["window"] = [0, 60]  # the window holds the fall: no zoom
    assert _zoom_range(record, "r", 99) is None
    # a one-sided band of a ratio is not mirrored: median(r / p) in [0.9, 1.1] spans 0.9 .. 1.1
    record["expectations"][0].update(window=[40, 60], statistic="median", compare="ratio", limits=[0.9, 1.1])
    lo, hi = _zoom_range(record, "r", 99)
    assert 0.8 < lo < 0.9 and 1.1 < hi < 1.2


def test_report_cli(results, tmp_path, capsys):
    assert main(["report", str(results), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").exists() and "16 cases (2 failed, 8 skipped)" in capsys.readouterr().out


def test_report_cli_default_is_the_newest_run(results, tmp_path, monkeypatch, capsys):
    shutil.copytree(results, tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 0
    assert (tmp_path / "report" / "index.html").exists()


@pytest.mark.parametrize("setup, expected", [
    (lambda p: None, "no such file or folder"),
    (lambda p: p.mkdir(), "no result records"),
    (lambda p: (p.mkdir(), (p / "bad.json").write_text("{not json")), "bad.json: not a readable JSON record"),
])
def test_report_bad_input_is_a_clear_error(tmp_path, capsys, setup, expected):
    setup(tmp_path / "in")
    assert main(["report", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_report_is_written_atomically(results, tmp_path, monkeypatch):
    """An interrupted report leaves no half-written page (and no temporary files)."""
    import harness.output.report as report_module

    def boom(*a, **k):
        raise KeyboardInterrupt

    out = tmp_path / "r"
    build_report([results], out)
    before = (out / "index.html").read_bytes()
    monkeypatch.setattr(report_module, "sweep_figure", boom)
    with pytest.raises(KeyboardInterrupt):
        build_report([results], out)
    assert (out / "index.html").read_bytes() == before
    assert not [p for p in out.rglob(".*") if p.is_file()]


# --- in a real browser --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by chromedriver (Debian's chromium and chromium-driver packages;
    `.ci/run` installs them and sets THEORY_HARNESS_REQUIRE_BROWSER=1, so CI cannot skip this)."""
    missing = [n for n, p in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if p is None]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium")
    if missing:
        if os.environ.get("THEORY_HARNESS_REQUIRE_BROWSER"):
            pytest.fail(f"THEORY_HARNESS_REQUIRE_BROWSER is set but {', '.join(missing)} is missing")
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


_IMAGES = "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth, i.naturalHeight])"


def test_every_figure_loads_in_headless_chromium(report, browser):
    built, out = report
    browser.get(built.index.resolve().as_uri())
    assert browser.title == "theory-harness report"
    for img in browser.find_elements("tag name", "img"):  # lazy images load once scrolled to
        browser.execute_script("arguments[0].scrollIntoView();", img)
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")
    images = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))"
        ".then(() => done(" + _IMAGES + "));")
    assert len(images) == len(built.figures) > 0
    broken = [src for src, complete, w, h in images if not (complete and w > 0 and h > 0)]
    assert not broken, f"figures that did not load: {broken}"
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    assert all(r.startswith("file://") for r in resources), [r for r in resources if not r.startswith("file://")]
