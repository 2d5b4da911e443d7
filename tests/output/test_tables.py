"""The run summary says why a case ended early: its error or the step it diverged at."""

import pytest

import harness.measures as measures
from harness import expand, load_suite, run_case
from harness.cli import main
from harness.output.tables import SUMMARY_HEADER, case_reason, summary_rows
from suite_text import VALID, write

ONE_CASE = VALID.replace("lr = [0.1, 0.2]", "lr = 0.1").replace("seeds = [0, 1]", "seeds = [0]") \
    .replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]')


@pytest.fixture
def crash_at_step_30(monkeypatch):
    real = measures.LambdaMax.__call__

    def broken(self, ctx, memory):
        if ctx.step == 30:
            raise RuntimeError("kernel exploded\nsecond line of the message")
        return real(self, ctx, memory)

    monkeypatch.setattr(measures.LambdaMax, "__call__", broken)


def _verdict_column(rows):
    return [row[-1] for row in rows]


def test_an_errored_case_shows_its_error_in_every_row(tmp_path, crash_at_step_30):
    r = run_case(expand(load_suite(write(tmp_path, ONE_CASE)))[0])
    rows = summary_rows([r])
    assert len(rows) == 3
    assert _verdict_column(rows) == ["FAIL (error at step 30: RuntimeError: kernel exploded)"] * 3


def test_a_diverged_case_shows_the_step(tmp_path):
    r = run_case(expand(load_suite(write(tmp_path, ONE_CASE.replace("lr = 0.1", "lr = 1e200"))))[0])
    assert r.diverged_at == 1
    assert _verdict_column(summary_rows([r])) == ["FAIL (diverged at step 1)"] * 3


def test_a_case_without_expectations_that_errored_gets_a_row(tmp_path, crash_at_step_30):
    text = ONE_CASE.split("[[expect]]")[0].replace("slow = false", "slow = false\nreport_only = true")
    r = run_case(expand(load_suite(write(tmp_path, text)))[0])
    (row,) = summary_rows([r])
    assert row[2:7] == ["-"] * 5 and row[-1] == "FAIL (error at step 30: RuntimeError: kernel exploded)"


def test_a_case_that_ran_to_its_end_has_plain_verdicts(tmp_path):
    r = run_case(expand(load_suite(write(tmp_path, ONE_CASE)))[0])
    assert case_reason(r) is None and _verdict_column(summary_rows([r])) == ["PASS"] * 3


def test_a_long_error_is_shortened():
    class R:
        error, info, diverged_at = "ValueError: " + "x" * 500, {}, None

    why = case_reason(R())
    assert why.startswith("error: ValueError: xxx") and why.endswith("...") and len(why) <= 90


def test_the_cli_summary_prints_the_reasons(tmp_path, crash_at_step_30, capsys):
    crash = write(tmp_path, ONE_CASE, "crash.toml")
    blowup = write(tmp_path, ONE_CASE.replace("lr = 0.1", "lr = 1e200").replace('id = "test.tiny"', 'id = "test.blowup"'),
                   "blowup.toml")
    assert main(["run", str(crash), str(blowup), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL (error at step 30: RuntimeError: kernel exploded)") == 3
    assert out.count("FAIL (diverged at step 1)") == 3
    assert out.splitlines()[0].split() == list(SUMMARY_HEADER)  # the same columns: the reason is in 'verdict'
