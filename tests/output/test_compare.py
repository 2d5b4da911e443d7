"""theory-harness compare: two runs of the same suites, one of them with a planted fault."""

import pytest

from harness.cli import main
from harness.output.compare import compare
from harness.predictions import PREDICTIONS

from suite_text import SWEEP, VALID, write

SUITE = VALID.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]') + SWEEP.replace("BOUND", "0.0")


def _run(tmp_path, name: str, text: str = SUITE) -> str:
    suite = write(tmp_path, text, f"{name}.toml")
    out = tmp_path / name
    main(["run", str(suite), "--out", str(out)])
    return str(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """BASE; HEAD with 2/eta miscomputed as 1/eta (margins shrink, still pass); HEAD with 0.5/eta
    (lambda_max * eta rises past the bound: a regression)."""
    tmp = tmp_path_factory.mktemp("compare")
    mp = pytest.MonkeyPatch()
    try:
        base = _run(tmp, "base")
        mp.setitem(PREDICTIONS._items, "gd_edge", lambda lr: 1.0 / lr)
        shrunk = _run(tmp, "shrunk")
        mp.setitem(PREDICTIONS._items, "gd_edge", lambda lr: 0.5 / lr)
        broken = _run(tmp, "broken")
    finally:
        mp.undo()
    return base, shrunk, broken


def _row(rows, case, name):
    return next(r for r in rows if r.case == case and r.expectation == name)


def test_identical_runs_flag_nothing(runs, capsys):
    base = runs[0]
    rows = compare(base, base)
    assert rows and all(r.flag == "" for r in rows)
    assert all(r.change == 0 for r in rows if r.change is not None)
    assert main(["compare", base, base]) == 0


def test_a_shrunk_margin_is_flagged_though_everything_passes(runs, capsys):
    base, shrunk, _ = runs
    rows = compare(base, shrunk, shrink=0.5)
    hit = _row(rows, "lr=0.2-seed=0-cpu", "sharpness_below_edge")  # max(lambda eta / 2): 0.4 -> 0.8 against <= 0.9
    assert hit.flag == "MARGIN" and hit.base["passed"] and hit.head["passed"]
    assert hit.change == pytest.approx(0.4) and hit.margin_change == pytest.approx(-0.8)
    calm = _row(rows, "lr=0.1-seed=0-cpu", "sharpness_below_edge")  # 0.2 -> 0.4: margin 0.7 -> 0.5 (-29 %)
    assert calm.flag == ""
    assert compare(base, shrunk, shrink=0.9)[0].flag != "MARGIN"  # the fraction is the user's
    assert main(["compare", base, shrunk]) == 0
    out = capsys.readouterr().out
    assert "MARGIN" in out and "shrunk by more than 50%" in out


def test_pass_to_fail_exits_non_zero_with_a_markdown_comment(runs, capsys, tmp_path):
    base, _, broken = runs
    md = tmp_path / "comment.md"
    assert main(["compare", base, broken, "--format", "markdown", "--markdown", str(md)]) == 1
    out = capsys.readouterr().out
    assert out.strip() == md.read_text().strip()
    assert out.startswith("### theory-harness: :x:")
    flagged = out.split("#### Flagged", 1)[1].split("<details>", 1)[0]
    assert "| test.tiny | lr=0.2-seed=0-cpu | sharpness_below_edge |" in flagged and "REGRESSED" in flagged
    assert "| suite | case | expectation |" in out and "</details>" in out
    rows = compare(base, broken)
    assert rows[0].flag == "REGRESSED"  # flagged rows first
    assert {r.case for r in rows if r.flag == "REGRESSED"} == {"lr=0.2-seed=0-cpu", "lr=0.2-seed=1-cpu"}


def test_the_other_way_round_is_a_fix(runs):
    base, _, broken = runs
    rows = compare(broken, base)
    assert {r.flag for r in rows} == {"", "FIXED"}
    assert main(["compare", broken, base]) == 0


def test_sweep_expectations_are_compared(runs):
    rows = compare(runs[0], runs[2])
    sweep = [r for r in rows if r.case.startswith("across=lr")]
    assert len(sweep) == 2 and all(r.statistic == "spearman(last vs lr)" for r in sweep)


@pytest.fixture(scope="module")
def renamed(runs, tmp_path_factory):
    """BASE, and a run of the same suites with the expectation loss_falls renamed loss_falls_renamed."""
    fewer = _run(tmp_path_factory.mktemp("renamed"), "fewer",
                 SUITE.replace('name = "loss_falls"', 'name = "loss_falls_renamed"'))
    return runs[0], fewer


def test_a_gone_expectation_is_flagged_gone(renamed):
    rows = compare(*renamed)
    assert {r.flag for r in rows if r.expectation == "loss_falls"} == {"GONE"}


def test_a_new_expectation_is_flagged_new(renamed):
    rows = compare(*renamed)
    assert {r.flag for r in rows if r.expectation == "loss_falls_renamed"} == {"NEW"}


def test_a_renamed_expectation_does_not_fail_compare(renamed):
    base, fewer = renamed
    assert main(["compare", base, fewer]) == 0  # nothing that held fails: a renamed check is flagged, not red


@pytest.mark.parametrize("args, expected", [
    (["compare", "nowhere", "nowhere_either"], "nowhere: not a folder of result records"),
    (["compare", ".", ".", "--shrink", "0"], "expected a fraction in (0, 1]"),
    (["compare", ".", ".", "--shrink", "lots"], "expected a number in (0, 1]"),
])
def test_bad_input_is_a_clear_error(args, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_a_folder_without_records_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), str(tmp_path / "empty")]) == 2
    assert "no result records" in capsys.readouterr().err
