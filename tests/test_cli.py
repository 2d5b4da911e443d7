import json
import subprocess
import sys

from harness.cli import main
from suite_text import VALID, write


def test_run_writes_records_and_a_summary(tmp_path, capsys):
    suite = write(tmp_path)
    out = tmp_path / "res"
    assert main(["run", str(suite), "--device", "cpu", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sharpness_below_edge" in text and "PASS" in text and "4 passed, 0 failed" in text
    (run,) = out.iterdir()
    records = sorted((run / "test.tiny").glob("*.json"))
    assert len(records) == 4
    rec = json.loads(records[0].read_text())
    assert rec["status"] == "passed" and rec["suite"]["id"] == "test.tiny"
    assert json.loads((run / "summary.json").read_text())["run_id"] == run.name
    # a second run never touches the first run's records
    assert main(["run", str(suite), "--device", "cpu", "--out", str(out)]) == 0
    assert len(list(out.iterdir())) == 2 and sorted((run / "test.tiny").glob("*.json")) == records


def test_failed_expectation_exits_1(tmp_path, capsys):
    suite = write(tmp_path, VALID.replace("bound = 0.9", "bound = 0.1"))
    assert main(["run", str(suite), "--device", "cpu", "--out", str(tmp_path / "r")]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_bad_input_exits_2_with_file_and_key(tmp_path, capsys):
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


def test_list_and_python_dash_m(tmp_path):
    write(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "harness", "list", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "test.tiny" in proc.stdout
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
