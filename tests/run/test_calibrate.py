"""theory-harness calibrate: extra seeds, deliberate errors, and what each expectation catches."""

import contextlib
import io
import json

import pytest

from harness import HarnessError, load_suite
from harness.run.calibrate import check_perturbation, extra_seeds, parse_perturbation, plan
from harness.cli import main

from suite_text import VALID, write

CPU = VALID.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]')


def test_parse_perturbation_gives_one_pair_per_factor():
    assert parse_perturbation("optimizer.lr=0.9,1.1") == [("optimizer.lr", 0.9), ("optimizer.lr", 1.1)]


def test_extra_seeds_avoid_the_suites_own(tmp_path):
    s = load_suite(write(tmp_path, CPU))
    assert extra_seeds(s, 3) == [2, 3, 4]  # none of the suite's own (0, 1)


def test_plan_lists_the_nominal_cases_then_the_perturbed_ones(tmp_path):
    s = load_suite(write(tmp_path, CPU))
    cases = plan(s, [2, 3], [("optimizer.lr", 1.1)], ["cpu"])
    assert [c.id for c in cases] == [
        "lr=0.1-seed=2-cpu", "lr=0.1-seed=3-cpu", "lr=0.2-seed=2-cpu", "lr=0.2-seed=3-cpu",
        "lr=0.1-seed=2-cpu-perturb=optimizer.lr*1.1", "lr=0.1-seed=3-cpu-perturb=optimizer.lr*1.1",
        "lr=0.2-seed=2-cpu-perturb=optimizer.lr*1.1", "lr=0.2-seed=3-cpu-perturb=optimizer.lr*1.1"]


@pytest.mark.parametrize("text,phrase", [
    ("optimizer.lr", "TARGET=F1"), ("optimizer.lr=x", "not a number"), ("optimizer.lr=1", "other than 1"),
    ("optimizer.lr=-2", "> 0"), ("optimizer.nope=1.1", "no number 'nope'"), ("problem.kind=1.1", "no number"),
    ("prediction.gd_edgy=1.1", "gd_edge"), ("kernel.gradient=1.1", "kernel.hessian"), ("opt.lr=1.1", "expected"),
])
def test_a_bad_perturbation_is_exit_2_naming_the_option(tmp_path, capsys, text, phrase):
    path = write(tmp_path, CPU)
    with pytest.raises(HarnessError) as err:
        for target, _ in parse_perturbation(text):
            check_perturbation(load_suite(path), target)
    assert phrase in str(err.value) and "--perturb" in str(err.value)
    assert main(["calibrate", str(path), "--perturb", text, "--out", str(tmp_path / "out")]) == 2
    assert "--perturb" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing trained


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """One calibration of the CPU suite over 2 extra seeds, with lr x 0.5 and every HVP x 3:
    its exit code, what it printed, its output folder and its calibration.json."""
    tmp = tmp_path_factory.mktemp("calibrate")
    path = write(tmp, CPU)
    out = tmp / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["calibrate", str(path), "--seeds", "2", "--perturb", "optimizer.lr=0.5",
                     "--perturb", "kernel.hessian=3", "--device", "cpu", "--out", str(out)])
    cals = list(out.glob("*/test.tiny/calibration.json"))
    record = json.loads(cals[0].read_text()) if len(cals) == 1 else None
    return code, printed.getvalue(), out, cals, record


def _rows(record):
    return {e["expectation"]: e for e in record["expectations"]}


def test_calibration_exits_0(calibration):
    code, *_ = calibration
    assert code == 0


def test_calibration_prints_what_each_perturbation_caught(calibration):
    _, text, *_ = calibration
    assert "false alarms" in text and "optimizer.lr*0.5: caught in" in text


def test_calibration_writes_one_record_naming_its_schema(calibration):
    *_, cals, _ = calibration
    (cal,) = cals
    record = json.loads(cal.read_text())
    assert record["schema"] == "theory-harness/calibration/1"


def test_calibration_record_lists_the_extra_seeds(calibration):
    *_, record = calibration
    assert record["seeds"] == [2, 3]


def test_calibration_counts_no_false_alarms_on_the_nominal_runs(calibration):
    *_, record = calibration
    rows = _rows(record)
    assert all(e["nominal"]["failed"] == 0 and e["nominal"]["runs"] == 4 for e in rows.values())
    assert rows["sharpness_below_edge"]["nominal"]["max"] == pytest.approx(0.4, rel=1e-6)
    assert record["caught"]["nominal"] == {"failed_runs": 0, "runs": 4}


def test_calibration_detects_a_scaled_hessian(calibration):
    *_, record = calibration
    # lambda_max * lr / 2 with every HVP x3: 0.6 at lr 0.1 (holds), 1.2 at lr 0.2 (caught)
    assert _rows(record)["sharpness_below_edge"]["perturbed"]["kernel.hessian*3"] == {"runs": 4, "failed": 2}
    assert record["caught"]["kernel.hessian*3"]["failed_runs"] >= 2


def test_calibration_detects_a_halved_step_size(calibration):
    *_, record = calibration
    # half the step size: the loss no longer reaches 1e-3 in 60 steps at lr 0.1 x 0.5
    assert _rows(record)["loss_falls"]["perturbed"]["optimizer.lr*0.5"]["failed"] >= 2


def test_a_perturbed_step_size_leaves_the_prediction_at_the_nominal_lr(calibration):
    _, _, out, _, _ = calibration
    # the update rule ran with lr x 0.5, the prediction bound the nominal lr (2 / 0.1 = 20)
    slow = json.loads(next(out.glob("*/test.tiny/lr=0.1-seed=2-cpu-perturb=optimizer.lr*0.5.json")).read_text())
    assert slow["case"]["perturbation"] == {"optimizer.lr": 0.5} and slow["case"]["hyper"]["lr"] == 0.1
    edge = next(v for v in slow["expectations"] if v["name"] == "sharpness_below_edge")
    assert edge["predicted"] == pytest.approx(20.0)
