import contextlib
import io
import json
import subprocess
import sys

import pytest

from harness.cli import main
from suite_text import VALID, write


def _run_tiny(tmp):
    """``theory-harness run`` of the tiny suite on the CPU into ``tmp/res``: the suite, the exit
    code, what it printed, and the output folder."""
    suite = write(tmp)
    out = tmp / "res"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run", str(suite), "--device", "cpu", "--out", str(out)])
    return suite, code, printed.getvalue(), out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return _run_tiny(tmp_path_factory.mktemp("cli"))


def test_run_prints_a_passing_summary_table(tiny_run):
    _, code, text, _ = tiny_run
    assert code == 0
    assert "sharpness_below_edge" in text and "PASS" in text and "4 passed, 0 failed" in text


def test_run_writes_one_record_per_case(tiny_run):
    *_, out = tiny_run
    (run,) = out.iterdir()
    records = sorted((run / "test.tiny").glob("*.json"))
    assert len(records) == 4
    rec = json.loads(records[0].read_text())
    assert rec["status"] == "passed" and rec["suite"]["id"] == "test.tiny"


def test_run_writes_a_summary_record_named_for_the_run(tiny_run):
    *_, out = tiny_run
    (run,) = out.iterdir()
    assert json.loads((run / "summary.json").read_text())["run_id"] == run.name


def test_a_second_run_never_touches_the_first_runs_records(tmp_path):
    suite, _, _, out = _run_tiny(tmp_path)
    (run,) = out.iterdir()
    records = sorted((run / "test.tiny").glob("*.json"))
    # a second run never touches the first run's records
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(suite), "--device", "cpu", "--out", str(out)]) == 0
    assert len(list(out.iterdir())) == 2 and sorted((run / "test.tiny").glob("*.json")) == records


def test_failed_expectation_exits_1(tmp_path, capsys):
    suite = write(tmp_path, VALID.replace("bound = 0.9", "bound = 0.1"))
    assert main(["run", str(suite), "--device", "cpu", "--out", str(tmp_path / "r")]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_bad_input_exits_2_naming_the_key_path(tmp_path, capsys):
    suite = write(tmp_path, VALID.replace("steps = 60", "steps = -5"))
    assert main(["run", str(suite), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{suite}: run.steps: expected a number > 0, got -5" in err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["run", "--device", "tpu"]) == 2


def test_cuda_requested_without_gpu_exits_2(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        return
    assert main(["run", str(write(tmp_path)), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_python_dash_m_harness_lists_the_suites(tmp_path):
    write(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "harness", "list", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "test.tiny" in proc.stdout


def test_python_dash_m_harness_reports_bad_input_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(tmp_path / "nope.toml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_a_measure_the_problem_cannot_serve_exits_2_naming_the_measure(tmp_path, capsys):
    """effective_rank needs a matrix; on a quadratic the suite cannot run as written: bad input,
    found when the case starts, reported like a malformed suite (not as a failed claim, exit 1)."""
    text = VALID.replace("[measures.lambda_max]", "[measures.effective_rank]\nevery = 10\n\n[measures.lambda_max]")
    path = write(tmp_path, text.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]'))
    assert main(["run", str(path), "--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: measures.effective_rank: this measure needs a problem that defines a matrix" in err


def test_an_update_rule_that_cannot_bind_to_the_problem_exits_2_naming_the_optimizer(tmp_path, capsys):
    text = VALID.replace('kind = "gd"\nlr = [0.1, 0.2]', 'kind = "two_rate_gd"\nlr_first = 0.1\nlr_second = 0.1')
    text = text.replace('predict = "gd_edge"', 'predict = "gd_edge"\nargs = { lr = 0.1 }')
    path = write(tmp_path, text.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]'))
    code = main(["run", str(path), "--device", "cpu", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}: optimizer: cannot be set up for this case" in err, err
