"""The report's calibration section (issue 15, item 1): calibration.json files under the report's
folders are shown per suite: spread, smallest margin, false alarms, errors caught."""

import json
import re

import pytest

from harness import HarnessError, load_suite
from harness.output.records import calibration_record, read_calibrations, write_json_atomic
from harness.output.report import build_report
from harness.run.calibrate import Calibration, Spread
from suite_text import write


@pytest.fixture
def calibration(tmp_path):
    suite = load_suite(write(tmp_path))
    cal = Calibration(suite, [3, 4], [
        Spread("hovers_at_edge", 4, 1, 0.98, 1.01, 1.04, -0.002, {"optimizer.lr*1.1": (4, 4)}),
        Spread("loss_falls", 4, 0, 0.1, 0.2, 0.3, 0.05, {"optimizer.lr*1.1": (0, 4)})],
        {"nominal": (1, 4), "optimizer.lr*1.1": (4, 4)})
    folder = tmp_path / "runs" / "r1" / suite.id
    write_json_atomic(folder / "calibration.json", calibration_record(cal, "20261130T000000Z-aaaaaa"))
    return tmp_path / "runs"


def _row(page: str, name: str) -> list[str]:
    row = re.search(rf"<tr><td>{name}</td>(.*?)</tr>", page).group(1)
    return re.findall(r"<td>(.*?)</td>", row)


@pytest.fixture
def page(calibration, tmp_path):
    return build_report([calibration], tmp_path / "report").index.read_text()


def test_each_expectation_shows_its_nominal_spread(page):
    assert "<h2>Calibrations</h2>" in page
    assert _row(page, "hovers_at_edge")[:4] == ["0.98", "1.01", "1.04", "-0.002"]


def test_a_false_alarm_is_flagged(page):
    cell = _row(page, "hovers_at_edge")[4]
    assert ">1/4<" in cell and 'class="fail"' in cell


def test_each_deliberate_error_shows_the_runs_it_fails(page):
    assert _row(page, "hovers_at_edge")[5] == "4/4" and _row(page, "loss_falls")[5] == "0/4"


def test_the_runs_an_error_is_caught_in_are_listed(page):
    assert "optimizer.lr*1.1: caught in 4 of 4 runs" in page
    assert "(false alarms): 1 of 4" in page


def test_the_newest_calibration_of_a_suite_is_shown(calibration):
    (newer,) = list(calibration.rglob("calibration.json"))
    data = json.loads(newer.read_text())
    data["run_id"], data["seeds"] = "20261201T000000Z-bbbbbb", [7]
    write_json_atomic(calibration / "r2" / "x" / "calibration.json", data)
    (cal,) = read_calibrations(calibration)
    assert cal["seeds"] == [7]


def test_a_malformed_calibration_is_refused_naming_the_key_path(calibration):
    (path,) = list(calibration.rglob("calibration.json"))
    data = json.loads(path.read_text())
    data["expectations"][0]["nominal"]["failed"] = "one"
    path.write_text(json.dumps(data))
    with pytest.raises(HarnessError, match=r"calibration.json: expectations\[0\].nominal.failed: expected an integer"):
        read_calibrations(calibration)
