import pytest
import torch

from suite_text import SWEEP, VALID


def _suite(pytester, text=VALID):
    pytester.makefile(".toml", **{"suites/tiny": text})
    pytester.makeini("[pytest]\nharness_suite_dirs = suites\n")


def test_cases_are_collected_one_item_per_case(pytester):
    _suite(pytester)
    result = pytester.runpytest("--collect-only", "-q")
    assert sum("tiny.toml::" in line for line in result.outlines) == 8


def _passing_run(pytester):
    """The tiny suite, which passes, run on every device with its skip reasons shown."""
    _suite(pytester)
    return pytester.runpytest("-rs", "--harness-out", "out")


def test_a_passing_suite_passes_on_the_cpu_plus_cuda_where_available(pytester):
    result = _passing_run(pytester)
    if torch.cuda.is_available():
        result.assert_outcomes(passed=8)
    else:
        result.assert_outcomes(passed=4, skipped=4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the CUDA items run, none is skipped")
def test_without_a_gpu_the_cuda_items_are_skipped_with_the_reason(pytester):
    result = _passing_run(pytester)
    result.stdout.fnmatch_lines(["*CUDA is not available on this machine*"])


def test_a_passing_suite_writes_one_record_per_case_run_cuda_included(pytester):
    _passing_run(pytester)
    assert len(list((pytester.path / "out").rglob("*.json"))) == (8 if torch.cuda.is_available() else 4)


def test_the_device_option_with_a_marker_selects_the_cpu_items(pytester):
    _suite(pytester)
    result = pytester.runpytest("--device", "cpu", "-m", "not cuda", "-rs")
    result.assert_outcomes(passed=4, deselected=4)


def test_failing_case_prints_its_table(pytester):
    _suite(pytester, VALID.replace("bound = 0.9", "bound = 0.1"))
    result = pytester.runpytest("--device", "cpu", "--harness-out", "")
    result.assert_outcomes(failed=4, skipped=4)
    result.stdout.fnmatch_lines(["*sharpness_below_edge*", "*measured*", "*predicted*", "*tolerance*<= 0.1*",
                                 "*window*steps 0..60*", "*last measurements*"])


def test_malformed_suite_is_a_collection_error_without_traceback(pytester):
    _suite(pytester, VALID.replace("steps = 60", "stepz = 60"))
    result = pytester.runpytest("-ra")
    result.stdout.fnmatch_lines(["*suites/tiny.toml: run.stepz: unknown key (did you mean 'steps'?)*"])
    assert "Traceback" not in result.stdout.str()
    assert result.ret != 0


def test_short_summary_names_the_key_path_of_a_collection_error(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")  # pytest prints the short summary's reasons untrimmed on CI
    _suite(pytester, VALID.replace("steps = 60", "stepz = 60"))
    result = pytester.runpytest("-ra")
    result.stdout.fnmatch_lines(["ERROR suites/tiny.toml - suites/tiny.toml: run.stepz: unknown key*"])


def test_short_summary_names_the_failed_expectations(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    _suite(pytester, VALID.replace("bound = 0.9", "bound = 0.1"))
    result = pytester.runpytest("-ra", "--device", "cpu", "--harness-out", "")
    result.stdout.fnmatch_lines(["FAILED suites/tiny.toml::lr=0.1-seed=0-cpu - 1 expectation(s) failed: "
                                 "sharpness_below_edge"])


def test_two_suite_files_with_one_id_are_a_collection_error_naming_both(pytester):
    _suite(pytester)
    pytester.makefile(".toml", **{"suites/copy": VALID})
    result = pytester.runpytest("--device", "cpu", "--harness-out", "")
    result.stdout.fnmatch_lines(["*suites/tiny.toml: suite.id: 'test.tiny' is also the id of suites/copy.toml*"])
    assert result.ret != 0 and "passed" not in result.outlines[-1]


def test_a_suite_folder_named_on_the_command_line_is_collected_wherever_it_is(pytester):
    pytester.makefile(".toml", **{"elsewhere/my_suites/tiny": VALID,
                                  "elsewhere/my_suites/pyproject": '[project]\nname = "x"\n'})
    result = pytester.runpytest("elsewhere/my_suites", "--device", "cpu", "--harness-out", "", "-q")
    result.assert_outcomes(passed=4, skipped=4)  # tiny.toml's cases; pyproject.toml is not a suite
    result = pytester.runpytest("elsewhere", "--collect-only", "-q")
    assert sum("tiny.toml::" in line for line in result.outlines) == 8
    assert not any("pyproject.toml" in line for line in result.outlines)


def test_passing_sweep_items_pass_writing_their_records(pytester):
    _suite(pytester, VALID + SWEEP.replace("BOUND", "-0.99"))
    result = pytester.runpytest("--device", "cpu", "-rA", "--harness-out", "out")
    result.assert_outcomes(passed=6, skipped=6)  # 4 cases + 2 sweep groups on the CPU
    assert len(list((pytester.path / "out").rglob("sweep-*.json"))) == 2


def test_failing_sweep_items_fail_with_a_table(pytester):
    _suite(pytester, VALID + SWEEP.replace("BOUND", "-1.5"))
    result = pytester.runpytest("--device", "cpu", "--harness-out", "")
    result.assert_outcomes(passed=4, failed=2, skipped=6)
    result.stdout.fnmatch_lines(["*larger_lr_lower_loss*", "*per case:*", "*lr=0.1-seed=0-cpu*"])


# --- pytest-xdist -------------------------------------------------------------------------------

import re  # noqa: E402

from harness.pytest_plugin import SuiteGroups, physical_gpu, worker_gpu_index, xdist_groups  # noqa: E402
from harness.run.runner import expand, group_key  # noqa: E402
from harness.spec.reader import load_suite  # noqa: E402


def _workers(result, pattern: str) -> dict[str, str]:
    """``{item: worker}`` from ``-v`` output lines like ``[gw1] [ 50%] PASSED suites/tiny.toml::...``."""
    out = {}
    for line in result.outlines:
        m = re.match(r"\[(gw\d+)\].*?(suites/tiny\.toml::\S+)", line)
        if m and re.search(pattern, m.group(2)):
            out[m.group(2)] = m.group(1)
    return out


def test_xdist_one_run_folder_each_case_once_sweeps_with_their_cases(pytester):
    pytest.importorskip("xdist")
    _suite(pytester, VALID + SWEEP.replace("BOUND", "-0.99"))
    result = pytester.runpytest_subprocess("-n", "2", "-v", "--harness-out", "out", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, skipped=6)
    runs = list((pytester.path / "out").iterdir())
    assert len(runs) == 1  # the workers share the controller's run id
    records = sorted(p.name for p in runs[0].rglob("*.json"))
    assert records == sorted([f"lr={lr}-seed={s}-cpu.json" for lr in (0.1, 0.2) for s in (0, 1)]
                             + ["sweep-across=lr-seed=0-cpu.json", "sweep-across=lr-seed=1-cpu.json"])
    # a sweep group runs on the worker that ran its cases (so no case is run, or written, twice)
    workers = _workers(result, r"seed=0-cpu")
    assert len(workers) == 3 and len(set(workers.values())) == 1, workers
    cuda = _workers(result, r"-cuda")  # skipped here, but kept on one worker as with one GPU
    assert len(cuda) == 6 and len(set(cuda.values())) == 1, cuda
    result.stdout.fnmatch_lines(["*theory-harness under xdist (--dist loadgroup): CUDA items on one worker*"])


def _swept_over_three_seeds(tmp_path):
    """A suite swept along lr over 3 seeds on both devices: its id, its cases, and its sweep groups."""
    from suite_text import write

    suite = load_suite(write(tmp_path, VALID.replace("seeds = [0, 1]", "seeds = [0, 1, 2]") + SWEEP.replace("BOUND", "0")))
    cases = expand(suite)
    sweeps = {}
    for case in cases:
        sweeps.setdefault(group_key(case, "lr"), {})[case.id] = case
    return suite.id, cases, sweeps


def test_xdist_groups_join_overlapping_sweeps(tmp_path):
    suite_id, cases, sweeps = _swept_over_three_seeds(tmp_path)
    spread = xdist_groups(suite_id, cases, sweeps, cuda_one_worker=False)
    assert len(set(spread.values())) == 6  # 3 seeds x 2 devices: one group per sweep group
    assert spread["lr=0.1-seed=0-cpu"] == spread["lr=0.2-seed=0-cpu"] != spread["lr=0.1-seed=1-cpu"]


def test_xdist_groups_keep_cuda_together(tmp_path):
    suite_id, cases, sweeps = _swept_over_three_seeds(tmp_path)
    one = xdist_groups(suite_id, cases, sweeps, cuda_one_worker=True)
    assert {one[c.id] for c in cases if c.device == "cuda"} == {"theory-harness-cuda"}


def test_xdist_groups_are_empty_without_a_sweep(tmp_path):
    suite_id, cases, _ = _swept_over_three_seeds(tmp_path)
    assert xdist_groups(suite_id, cases, {}, cuda_one_worker=False) == {}  # no sweep: any worker


def test_worker_gpu_pinning_respects_the_callers_visible_devices():
    assert [worker_gpu_index(f"gw{k}", 4) for k in range(6)] == [0, 1, 2, 3, 0, 1]
    assert worker_gpu_index("gw3", 0) is None and worker_gpu_index("master", 2) is None
    assert physical_gpu(1, "3,5") == "5" and physical_gpu(0, " 7 , 2") == "7" and physical_gpu(1, None) == "1"


def test_the_controller_computes_suite_groups_from_node_ids(tmp_path):
    """pytest >= 9.2 drops the ``@group`` suffix xdist <= 3.8 writes; the scheduler must not need it."""
    from suite_text import write

    (tmp_path / "suites").mkdir()
    write(tmp_path / "suites", VALID + SWEEP.replace("BOUND", "0"), name="tiny.toml")
    groups = SuiteGroups(tmp_path, cuda_one_worker=True)
    case, other = groups("suites/tiny.toml::lr=0.1-seed=0-cpu"), groups("suites/tiny.toml::lr=0.2-seed=0-cpu")
    assert case is not None and case == other == groups("suites/tiny.toml::sweep[across=lr-seed=0-cpu]")
    assert case != groups("suites/tiny.toml::lr=0.1-seed=1-cpu")
    assert groups("suites/tiny.toml::lr=0.1-seed=0-cpu@anything") == case  # older pytest keeps the suffix
    assert groups("suites/tiny.toml::lr=0.1-seed=0-cuda") == "theory-harness-cuda"
    assert groups("tests/test_x.py::test_y") is None and groups("suites/missing.toml::a") is None
