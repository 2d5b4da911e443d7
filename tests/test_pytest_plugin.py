import torch

from suite_text import SWEEP, VALID


def _suite(pytester, text=VALID):
    pytester.makefile(".toml", **{"suites/tiny": text})
    pytester.makeini("[pytest]\nharness_suite_dirs = suites\n")


def test_cases_are_collected_one_item_per_case(pytester):
    _suite(pytester)
    result = pytester.runpytest("--collect-only", "-q")
    assert sum("tiny.toml::" in line for line in result.outlines) == 8


def test_passing_suite_and_cuda_items_skipped_with_reason(pytester):
    _suite(pytester)
    result = pytester.runpytest("-rs", "--harness-out", "out")
    if torch.cuda.is_available():
        result.assert_outcomes(passed=8)
    else:
        result.assert_outcomes(passed=4, skipped=4)
        result.stdout.fnmatch_lines(["*CUDA is not available on this machine*"])
    assert len(list((pytester.path / "out").rglob("*.json"))) == (8 if torch.cuda.is_available() else 4)


def test_device_option_and_markers(pytester):
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
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*suites/tiny.toml: run.stepz: unknown key (did you mean 'steps'?)*"])
    assert "Traceback" not in result.stdout.str()
    assert result.ret != 0


def test_sweep_items_pass_and_fail_with_a_table(pytester):
    _suite(pytester, VALID + SWEEP.replace("BOUND", "-0.99"))
    result = pytester.runpytest("--device", "cpu", "-rA", "--harness-out", "out")
    result.assert_outcomes(passed=6, skipped=6)  # 4 cases + 2 sweep groups on the CPU
    assert len(list((pytester.path / "out").rglob("sweep-*.json"))) == 2
    _suite(pytester, VALID + SWEEP.replace("BOUND", "-1.5"))
    result = pytester.runpytest("--device", "cpu", "--harness-out", "")
    result.assert_outcomes(passed=4, failed=2, skipped=6)
    result.stdout.fnmatch_lines(["*larger_lr_lower_loss*", "*per case:*", "*lr=0.1-seed=0-cpu*"])
