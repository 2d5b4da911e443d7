"""scripts/gpu-check: without a GPU it says so, runs the checks that need none and exits 0 with
its folder complete; its stages (plumbing mode) keep going after a failure or a timeout, and the
exit code says a stage failed. (No test name here mentions CUDA: the script runs ``pytest -k cuda``.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu-check"


def gpu_check(*args, plumbing=None, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "GPU_CHECK_PLUMBING"}
    if plumbing is not None:
        env["GPU_CHECK_PLUMBING"] = plumbing
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_script_is_one_executable_command():
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text(encoding="utf-8").startswith("#!/usr/bin/env python3\n")


no_gpu_here = pytest.mark.skipif(torch.cuda.is_available(),
                                 reason="a GPU machine runs the real check (minutes), not this one")


@pytest.fixture(scope="module")
def no_gpu_check(tmp_path_factory):
    """The real check, run once on this GPU-less machine: the finished process and its folder.

    Once per test session: under pytest-xdist the first worker to get here runs it (half a minute)
    in the folder all workers share, under a lock, and any other reads what it left. (An
    ``xdist_group`` mark would not do: pytest >= 9.2 drops the node-id suffix pytest-xdist <= 3.8
    groups by, see harness.pytest_plugin.SuiteGroups.)"""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above each worker's own
    out, done = shared / "no_gpu_check" / "check", shared / "no_gpu_check.json"
    try:
        import fcntl
    except ImportError:  # no POSIX file locks: each worker runs its own
        out = tmp_path_factory.mktemp("no_gpu") / "check"
        return gpu_check(out), out
    with open(shared / "no_gpu_check.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            out.parent.mkdir(exist_ok=True)
            proc = gpu_check(out)
            done.write_text(json.dumps({"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}))
        ran = json.loads(done.read_text())
    return subprocess.CompletedProcess([str(SCRIPT), str(out)], ran["rc"], ran["stdout"], ran["stderr"]), out


@no_gpu_here
def test_without_a_gpu_it_exits_0(no_gpu_check):
    proc, out = no_gpu_check
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    s = summary(out)
    assert s["mode"] == "no-gpu" and s["exit_code"] == 0 and s["failed_stages"] == []
    assert "exit 0" in (out / "summary.txt").read_text(encoding="utf-8")


@no_gpu_here
def test_without_a_gpu_it_says_so(no_gpu_check):
    proc, _ = no_gpu_check
    assert "NO CUDA GPU on this machine" in proc.stdout


@no_gpu_here
def test_without_a_gpu_it_runs_every_stage_that_needs_none(no_gpu_check):
    _, out = no_gpu_check
    s = summary(out)
    status = {r["stage"]: r["status"] for r in s["stages"]}
    assert list(status) == ["versions", "nvidia-smi", "cuda-tests", "benchmarks", "catalogue", "report"]
    assert all(v == "passed" for k, v in status.items() if k != "nvidia-smi"), status
    assert all(r["wall_s"] > 0 and r["timeout_s"] for r in s["stages"] if r["status"] == "passed")


@no_gpu_here
def test_without_a_gpu_its_folder_is_complete(no_gpu_check):
    _, out = no_gpu_check
    status = {r["stage"]: r["status"] for r in summary(out)["stages"]}
    versions = json.loads((out / "versions.json").read_text(encoding="utf-8"))
    assert versions["torch"] == torch.__version__ and versions["cuda_available"] is False
    assert {"python", "torch_cuda", "cudnn", "numpy", "nvidia_smi"} <= set(versions)
    assert "torch==" in (out / "pip-freeze.txt").read_text(encoding="utf-8")
    assert (out / "nvidia-smi.txt").is_file()
    for stage in status:
        if stage != "nvidia-smi":
            assert (out / "logs" / f"{stage}.log").is_file(), stage


@no_gpu_here
def test_without_a_gpu_each_gpu_test_is_skipped_with_its_reason(no_gpu_check):
    _, out = no_gpu_check
    # the CUDA items skipped, each with its reason
    xml = (out / "cuda-tests.xml").read_text(encoding="utf-8")
    assert "CUDA is not available" in xml and 'message=""' not in xml


@no_gpu_here
def test_without_a_gpu_each_gpu_benchmark_is_refused_with_its_reason(no_gpu_check):
    _, out = no_gpu_check
    # every CUDA benchmark row was refused by its setup, with asv's reason
    rows = [json.loads(line) for line in (out / "benchmarks.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) > 20 and {r["status"] for r in rows} == {"skipped"}
    assert all("no CUDA device" in r["reason"] for r in rows)


@no_gpu_here
def test_without_a_gpu_the_cpu_smoke_writes_records_then_a_report(no_gpu_check):
    _, out = no_gpu_check
    # the CPU smoke: records written, then a report of them
    assert len(list((out / "records").rglob("*.json"))) >= 2
    assert (out / "report" / "index.html").is_file()


@pytest.fixture(scope="module")
def failing_check(tmp_path_factory):
    """The plumbing check with its test stage failing (exit 3) and its catalogue stage hanging:
    the finished process and its folder."""
    out = tmp_path_factory.mktemp("failing") / "check"
    return gpu_check(out, plumbing="cuda-tests=fail,catalogue=hang"), out


def test_stages_after_a_failing_or_hanging_stage_still_run(failing_check):
    _, out = failing_check
    rows = {r["stage"]: r for r in summary(out)["stages"]}
    assert rows["benchmarks"]["status"] == rows["report"]["status"] == "passed"  # ran after the failures


def test_a_failing_stage_is_recorded_with_its_exit_code(failing_check):
    _, out = failing_check
    rows = {r["stage"]: r for r in summary(out)["stages"]}
    assert rows["cuda-tests"]["status"] == "failed" and rows["cuda-tests"]["rc"] == 3


def test_a_failing_stage_keeps_its_output_in_its_log(failing_check):
    _, out = failing_check
    assert "failing on purpose" in (out / "logs" / "cuda-tests.log").read_text(encoding="utf-8")


def test_a_hanging_stage_is_killed_at_its_timeout(failing_check):
    _, out = failing_check
    rows = {r["stage"]: r for r in summary(out)["stages"]}
    assert rows["catalogue"]["status"] == "timeout" and rows["catalogue"]["wall_s"] < 10  # killed after 1 s


def test_a_failed_stage_makes_the_check_exit_1_naming_the_failed_stages(failing_check):
    proc, out = failing_check
    assert proc.returncode == 1, proc.stdout + proc.stderr
    s = summary(out)
    assert s["failed_stages"] == ["cuda-tests", "catalogue"] and s["exit_code"] == 1
    assert "failed: cuda-tests, catalogue" in (out / "summary.txt").read_text(encoding="utf-8")


def test_every_stage_passing_exits_0(tmp_path):
    proc = gpu_check(tmp_path / "ok", plumbing="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {r["status"] for r in summary(tmp_path / "ok")["stages"]} == {"passed"}


def test_a_spent_budget_runs_nothing(tmp_path):
    proc = gpu_check(tmp_path / "spent", "--budget", "0", plumbing="1")
    assert proc.returncode == 1
    assert {r["status"] for r in summary(tmp_path / "spent")["stages"]} == {"not run"}


def test_an_output_that_is_a_file_or_not_empty_is_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    assert gpu_check(tmp_path / "file", plumbing="1").returncode == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.json").write_text("{}")
    proc = gpu_check(tmp_path / "full", plumbing="1")
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert gpu_check(tmp_path / "x", plumbing="nostage=fail").returncode == 2  # an unknown stage: usage
