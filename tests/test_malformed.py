"""Bad input is exit 2 with ``FILE: key.path: what was expected``: never a traceback, never exit 1.

Malformed suites go through ``theory-harness list`` (and a few through ``run``); wrong-shape
records through ``compare`` and ``report``; unwritable outputs through ``run``, ``report`` and
``compare --markdown``.
"""

import copy
import json
import os
from pathlib import Path

import pytest

from harness import SuiteError, load_suite
from harness.cli import main
from harness.output.records import validate_record
from harness.spec.reader import check_unique_ids
from suite_text import SWEEP, VALID, write

# one quick case per (lr, seed): cpu only, seed 0, the sweep expectation over lr
SMALL = VALID.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]').replace("seeds = [0, 1]", "seeds = [0]")


def sub(old, new, count=1):
    """An edit of the valid suite text that must find ``old`` exactly ``count`` times."""
    def edit(text):
        assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times"
        return text.replace(old, new)
    return edit


def add(extra):
    return lambda text: text + extra


SWEEP_OK = SWEEP.replace("BOUND", "0.0")

# (edit of VALID, key path the message names, a phrase of what was expected)
MALFORMED = [
    # a list or a table where a name is expected
    (sub('kind = "quadratic"', 'kind = ["quadratic"]'), "problem.kind", "expected a problem name"),
    (sub('kind = "quadratic"', 'kind = { name = "quadratic" }'), "problem.kind", "expected a problem name"),
    (sub('kind = "gd"', 'kind = ["gd"]'), "optimizer.kind", "expected a optimizer name"),
    (sub('kind = "gd"', 'kind = 3'), "optimizer.kind", "got 3"),
    (add('\n[measures.lm]\nkind = ["lambda_max"]\n'), "measures.lm.kind", "expected a measure name"),
    (add('\n[measures.lm]\nkind = ""\n'), "measures.lm.kind", "non-empty string"),
    (sub('statistic = "max"', 'statistic = { name = ["max"] }'), "expect[0].statistic.name", "expected a string"),
    (sub('statistic = "max"', 'statistic = ["max"]'), "expect[0].statistic", "expected a statistic name"),
    (sub('statistic = "max"', 'statistic = { name = "spearman", with = ["loss"] }'), "expect[0].statistic.with",
     "must name a measure"),
    (sub("every = 10\n", 'every = 10\nfrom_event = ["low_loss"]\n'), "measures.lambda_max.from_event",
     "expected an event name"),
    (sub("every = 10\n", "every = 10\nfrom_event = 1\n"), "measures.lambda_max.from_event", "expected an event name"),
    (sub('measure = "loss"\nbelow', 'measure = ["loss"]\nbelow'), "events.low_loss.measure", "a measure of this suite"),
    (sub('predict = "gd_edge"', 'predict = ["gd_edge"]'), "expect[0].predict", "expected a string"),
    (sub('name = "loss_falls"', 'name = ["loss_falls"]'), "expect[1].name", "expected a string"),
    (sub('name = "loss_falls"', 'name = ""'), "expect[1].name", "non-empty"),
    (sub('measure = "loss"\ncheck = "reaches"', 'measure = ["loss"]\ncheck = "reaches"'), "expect[1].measure",
     "expected a string"),
    (sub('check = "le"\nbound = 0.9', 'check = ["le"]\nbound = 0.9'), "expect[0].check", "one of 'approx'"),
    (sub('direction = "below"', 'direction = ["below"]'), "expect[1].direction", "one of 'above', 'below'"),
    (sub('anchor = "low_loss"', 'anchor = ["low_loss"]'), "expect[2].window.anchor", "expected a string"),
    (add('\n[[overlay]]\nmeasure = ["loss"]\npredict = "gd_edge"\n'), "overlay[0].measure", "a measure of this suite"),
    (add('\n[[overlay]]\nmeasure = "loss"\npredict = { name = "gd_edge" }\n'), "overlay[0].predict",
     "expected a prediction name"),
    (sub("steps = 60", 'steps = 60\nstop = { event = ["low_loss"] }'), "run.stop.event", "expected a string"),
    (add(SWEEP_OK.replace('aggregate = "spearman"', 'aggregate = ["spearman"]')), "sweep_expect[0].aggregate",
     "one of 'spearman'"),
    (lambda t: t + SWEEP_OK.replace('across = "lr"', 'across = ["lr"]'), "sweep_expect[0].across", "expected a string"),
    # bool is an int in Python: types are checked strictly
    (sub("schema = 1", "schema = true"), "schema", "expected the integer 1"),
    (sub("schema = 1", "schema = 1.0"), "schema", "expected the integer 1"),
    (sub("schema = 1", 'schema = "1"'), "schema", "expected the integer 1"),
    (sub("steps = 60", "steps = true"), "run.steps", "expected an integer"),
    (sub("steps = 60", "steps = 60.0"), "run.steps", "expected an integer"),
    (sub("lr = [0.1, 0.2]", "lr = [0.1, true]"), "optimizer.lr", "finite number"),
    (sub("lr = [0.1, 0.2]", "lr = true"), "optimizer.lr", "finite number"),
    (sub("every = 10", "every = true"), "measures.lambda_max.every", "expected an integer"),
    (sub("within = 60", "within = true"), "expect[1].within", "expected an integer"),
    (sub("seeds = [0, 1]", "seeds = [0, true]"), "suite.seeds[1]", "expected an integer"),
    (sub("slow = false", "slow = 0"), "suite.slow", "true or false"),
    (sub("bound = 0.9", "bound = true"), "expect[0].bound", "expected a number or a table, got True"),
    (sub("bound = 0.9", "bound = 0.9\nallow_divergence = 1"), "expect[0].allow_divergence", "true or false"),
    (sub("bound = 0.9", "bound = 0.9\nwhere = { lr = true }"), "expect[0].where.lr", "not among the axis' values"),
    (sub("bound = 0.9", 'bound = 0.9\nargs = { lr = true }'), "expect[0].args.lr", "finite number"),
    (sub("below = 1e-3", "below = true"), "events.low_loss.below", "finite number"),
    (sub('statistic = "max"', 'statistic = { name = "percentile", q = true }'), "expect[0].statistic.q",
     "finite number"),
    # NaN and infinity never pass as a threshold, bound, target or interval end
    (sub('statistic = "max"', 'statistic = { name = "fraction_above", threshold = nan }'),
     "expect[0].statistic.threshold", "finite number"),
    (sub('statistic = "max"', 'statistic = { name = "first_step_below", threshold = -inf }'),
     "expect[0].statistic.threshold", "finite number"),
    (sub('statistic = "max"', 'statistic = { name = "percentile", q = nan }'), "expect[0].statistic.q", "finite"),
    (sub("threshold = 1e-3", "threshold = nan"), "expect[1].threshold", "expected a number, got nan"),
    (sub("bound = 0.9", "bound = inf"), "expect[0].bound", "got inf"),
    (sub("bound = 0.9", "bound = 0.9\non = { cuda = { bound = nan } }"), "expect[0].on.cuda.bound", "got nan"),
    (sub('check = "le"\nbound = 0.9', 'check = "interval"\ninterval = [nan, 1.0]'), "expect[0].interval", "got [nan, 1.0]"),
    (sub('check = "le"\nbound = 0.9', 'check = "approx"\ntarget = nan\nrtol = 0.1'), "expect[0].target", "got nan"),
    (sub('check = "le"\nbound = 0.9', 'check = "approx"\nrtol = inf'), "expect[0].rtol", "expected a number, got inf"),
    (sub('check = "le"\nbound = 0.9', 'check = "approx"\nrtol = 0.1\natol = -inf'), "expect[0].atol", "got -inf"),
    (sub("below = 1e-3", "below = nan"), "events.low_loss.below", "finite number"),
    (sub("bound = 0.9", "bound = 0.9\nargs = { lr = inf }"), "expect[0].args.lr", "finite number"),
    # every interval checked like the top-level one
    (sub('check = "le"\nbound = 0.9', 'check = "interval"\ninterval = [1.2, 0.8]'), "expect[0].interval", "low <= high"),
    (sub('check = "le"\nbound = 0.9', 'check = "interval"\ninterval = [0.8, 1.2]\n'
         'on = { cuda = { interval = [1.2, 0.8] } }'), "expect[0].on.cuda.interval", "low <= high"),
    (sub('check = "le"\nbound = 0.9', 'check = "interval"\ninterval = [0.8, 1.2]\non = { cuda = { interval = [1.0] } }'),
     "expect[0].on.cuda.interval", "low <= high"),
    (sub('check = "le"\nbound = 0.9', 'check = "interval"\ninterval = [0.8, 1.2, 1.5]'), "expect[0].interval",
     "low <= high"),
    # windows that cannot fit in the run are refused at load time, never cut short
    (sub('anchor = "low_loss", offset = 0', 'anchor = "start", length = 61'), "expect[2].window.length", "past"),
    (sub('anchor = "low_loss", offset = 0', 'anchor = "start", offset = 50, length = 11'), "expect[2].window.length",
     "offset + length <= 60"),
    (sub('anchor = "low_loss", offset = 0', 'anchor = "start", offset = 61'), "expect[2].window.offset", "past"),
    (sub('anchor = "low_loss", offset = 0', 'anchor = "end", length = 61'), "expect[2].window.length",
     "before step 0"),
    (sub('anchor = "low_loss", offset = 0', 'anchor = "end", offset = 61'), "expect[2].window.offset", "before step 0"),
    (sub('anchor = "low_loss", offset = 0', 'anchor = "end", offset = 10, fraction = 1.0'), "expect[2].window.fraction",
     "before step 0"),
    (sub('anchor = "low_loss", offset = 0', 'anchor = "low_loss", offset = 70'), "expect[2].window.offset", "past"),
    (sub('anchor = "low_loss", offset = 0', 'anchor = "low_loss", length = 100'), "expect[2].window.length", "past"),
    (lambda t: t + SWEEP_OK.replace("length = 10", "length = 600"), "sweep_expect[0].window.length", "past"),
    (lambda t: t.replace("steps = 60", 'steps = 60\nstop = { event = "low_loss", after = 5 }').replace(
        'anchor = "low_loss", offset = 0', 'anchor = "low_loss", offset = 1, length = 5'),
     "expect[2].window.length", "run.stop.after"),
    # a statistic name: did you mean
    (sub('statistic = "max"', 'statistic = "maxx"'), "expect[0].statistic", "did you mean 'max'"),
    (sub('statistic = "max"', 'statistic = "medain"'), "expect[0].statistic", "did you mean 'median'"),
    (sub('statistic = "max"', 'statistic = { name = "fraction_abov", threshold = 1 }'), "expect[0].statistic.name",
     "did you mean 'fraction_above'"),
    (sub('statistic = "max"', 'statistic = "fraction_above"'), "expect[0].statistic", "threshold = ..."),
    (sub('statistic = "max"', 'statistic = { name = "fraction_above", treshold = 1 }'),
     "expect[0].statistic.treshold", "did you mean 'threshold'"),
    (sub('statistic = "max"', 'statistic = { name = "fraction_above" }'), "expect[0].statistic.threshold", "missing"),
    (sub('statistic = "max"', 'statistic = { name = "max", q = 1 }'), "expect[0].statistic.q", "no parameter"),
    # other names and values
    (sub('predict = "gd_edge"', 'predict = "gd_edge"\ncompare = "quotient"'), "expect[0].compare", "'ratio'"),
    (add('\n[events.e2]\nmeasure = "loss"\npredict = "gd_edge"\ncompare = "quotient"\nabove = 1.0\n'),
     "events.e2.compare", "'ratio'"),
    (add('\n[events.e2]\nmeasure = "loss"\ncompare = "ratio"\nabove = 1.0\n'), "events.e2.compare", "without a prediction"),
    (sub("bound = 0.9", "bound = 0.9\nargs = [1]"), "expect[0].args", "expected a table"),
    (sub("bound = 0.9", 'bound = 0.9\non = { cuda = { bound = { predict = "gd_edj" } } }'), "expect[0].on.cuda.bound.predict",
     "did you mean 'gd_edge'"),
    (sub("bound = 0.9", "bound = 0.9\nbund = 1.0"), "expect[0].bund", "did you mean 'bound'"),
    (sub("seeds = [0, 1]", "seeds = [-1]"), "suite.seeds[0]", "[0, 2**63)"),
    (sub("seeds = [0, 1]", "seeds = [0, 0]"), "suite.seeds", "distinct"),
    (sub("seeds = [0, 1]", "seeds = []"), "suite.seeds", "non-empty"),
    (sub('devices = ["cpu", "cuda"]', 'devices = ["cpu", "cpu"]'), "suite.devices", "distinct"),
    (sub('devices = ["cpu", "cuda"]', 'devices = "cpu"'), "suite.devices", "a list of a string"),
    (sub('devices = ["cpu", "cuda"]', "devices = []"), "suite.devices", "at least one"),
    (sub('dtype = "float64"', 'dtype = ["float64"]'), "suite.dtype", "a dtype name"),
    (sub('dtype = "float64"', 'dtype = { cpu = ["float64"], cuda = "float32" }'), "suite.dtype.cpu", "float32"),
    (sub('id = "test.tiny"', 'id = ["test.tiny"]'), "suite.id", "expected a string"),
    (sub('id = "test.tiny"', 'id = "Test Tiny"'), "suite.id", "lower-case"),
    (sub('claim = "GD on a quadratic converges and lambda_max equals the top eigenvalue."', 'claim = " "'),
     "suite.claim", "non-empty"),
    (sub("slow = false", 'slow = false\nmatmul_precision = ["high"]'), "suite.matmul_precision", "'highest'"),
    (sub("lr = [0.1, 0.2]", "lr = [0.1, 0.1]"), "optimizer.lr", "distinct values"),
    (sub("lr = [0.1, 0.2]", "lr = [0.1, 0.1000000001]"), "optimizer.lr", "distinct values"),
    (sub("lr = [0.1, 0.2]", 'sweep = "zip"\nlr = [0.1, 0.1]'), "optimizer.sweep", "every point must differ"),
    (sub("lr = [0.1, 0.2]", "lr = []"), "optimizer.lr", "at least one value"),
    (sub("lr = [0.1, 0.2]", "lr = -0.1"), "optimizer.lr", "> 0"),
    (sub("lr = [0.1, 0.2]", "lr = nan"), "optimizer.lr", "finite number"),
    (sub("lr = [0.1, 0.2]", 'lr = [0.1, 0.2]\nsweep = ["zip"]'), "optimizer.sweep", "'product', 'zip'"),
    (sub("steps = 60", "steps = 0"), "run.steps", "> 0"),
    (sub("steps = 60", "steps = -3"), "run.steps", "> 0"),
    (sub("every = 10", "every = 0"), "measures.lambda_max.every", ">= 1"),
    (sub("every = 10", "every = -2"), "measures.lambda_max.every", ">= 1"),
    (sub("every = 10", "every = 10\ncoarse = [1]"), "measures.lambda_max.coarse", "expected a table"),
    (sub("every = 10", "every = 10\ncoarse = { until = -1 }"), "measures.lambda_max.coarse", "until >= 0"),
    (sub("steps = 60", 'steps = 60\nstop = { event = "low_loss", after = -1 }'), "run.stop.after", ">= 0"),
    (sub("within = 60", "within = -1"), "expect[1].within", ">= 0"),
    (sub("within = 60", "within = 1.5"), "expect[1].within", "expected an integer"),
    # sections of the wrong type, empty, missing or unknown
    (lambda t: "run = 60\n" + t.replace("[run]\nsteps = 60", ""), "run", "expected a table"),
    (sub("[run]\nsteps = 60", "[run]"), "run.steps", "missing"),
    (sub('[problem]\nkind = "quadratic"\neigenvalues = [4.0, 1.0, 0.5]', "[problem]"), "problem.kind", "missing"),
    (lambda t: 'problem = "quadratic"\n' + t.replace('[problem]\nkind = "quadratic"\neigenvalues = [4.0, 1.0, 0.5]', ""),
     "problem",
     "expected a table"),
    (sub("[measures.loss]\nevery = 1", "[measures.loss]\nevery = 1\n[measures.x]\n"), "measures.x",
     "unknown measure 'x'"),
    (sub("[measures.loss]\nevery = 1", "[measures.loss]\nevery = 1\n[measures]\nmore = 5"), "measures.more",
     "expected a table"),
    (sub("[events.low_loss]", "[events.end]"), "events.end", "reserved"),
    (lambda t: "events2 = 1\n" + t, "events2", "did you mean 'events'"),
    (lambda t: "events = [1]\n" + t.replace('[events.low_loss]\nmeasure = "loss"\nbelow = 1e-3\n', ""), "events",
     "expected a table"),
    (lambda t: "expect = 5\n" + t[: t.index("[[expect]]")], "expect", "at least one [[expect]]"),
    (lambda t: "expect = [1]\n" + t[: t.index("[[expect]]")], "expect[0]", "expected a table"),
    (lambda t: "sweep_expect = { a = 1 }\n" + t, "sweep_expect", "[[sweep_expect]]"),
    (lambda t: "overlay = { a = 1 }\n" + t, "overlay", "[[overlay]]"),
    (lambda t: "overlay = [1]\n" + t, "overlay[0]", "expected a table"),
    (lambda t: "", "schema", "missing"),
    (lambda t: "schema = 1\n", "suite", "missing section"),
]


def _ids(table):
    seen = {}
    out = []
    for _, key, _ in table:
        seen[key] = seen.get(key, 0) + 1
        out.append(f"{key}#{seen[key]}")
    return out


@pytest.mark.parametrize("edit,key,phrase", MALFORMED, ids=_ids(MALFORMED))
def test_malformed_suite_is_exit_2_naming_the_key_path(tmp_path, capsys, edit, key, phrase):
    path = write(tmp_path, edit(VALID))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert (err.value.file, err.value.key) == (str(path), key), str(err.value)
    assert phrase in err.value.message, str(err.value)
    assert main(["list", str(path)]) == 2
    out = capsys.readouterr()
    assert out.err.startswith(f"theory-harness: error: {path}: {key}: ") and phrase in out.err, out.err
    assert "Traceback" not in out.err and out.out == ""


def test_the_valid_suite_loads(tmp_path):
    """The edits above change a suite that loads: each failure is the edit's, not the base's."""
    load_suite(write(tmp_path, VALID + SWEEP_OK, "base.toml"))


def test_a_window_that_ends_on_the_last_step_fits(tmp_path):
    s = load_suite(write(tmp_path, VALID.replace('anchor = "low_loss", offset = 0', 'anchor = "start", offset = 50, '
                                                 'length = 10'), "edge.toml"))
    assert s.expectations[2].window.bounds(s.steps) == (50, 60)  # a window that ends on the last step fits


def test_a_window_counted_back_from_the_end_fits(tmp_path):
    s = load_suite(write(tmp_path, VALID.replace('anchor = "low_loss", offset = 0', 'anchor = "end", offset = 10, '
                                                 'length = 50'), "end.toml"))
    assert s.expectations[2].window.bounds(s.steps) == (0, 50)


@pytest.mark.parametrize("data,phrase", [
    (b"\xff\xfe\x00 not text", "not UTF-8 text"),
    (b"this is = = not toml", "malformed TOML"),
    (b"[suite\nid = 1", "malformed TOML"),
    (b"schema = 1\nschema = 1\n", "malformed TOML"),
])
def test_files_that_are_not_toml(tmp_path, capsys, data, phrase):
    path = tmp_path / "bad.toml"
    path.write_bytes(data)
    assert main(["list", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"theory-harness: error: {path}: ") and phrase in err and "Traceback" not in err


def test_paths_without_suites(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no suite here")
    (empty / "folder.toml").mkdir()  # a folder named like a suite is not one
    for args in (["list", str(empty)], ["run", str(empty)], ["list", str(tmp_path / "missing")],
                 ["run", str(tmp_path / "missing.toml")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"theory-harness: error: {args[1]}: ") and "Traceback" not in err, err
        assert "no suite files" in err or "no such file" in err


# ----------------------------------------------------------------------------- duplicate suite ids

def test_two_suites_with_one_id_are_refused_naming_both_files(tmp_path, capsys, monkeypatch):
    import harness.cli as cli

    first = write(tmp_path, VALID, "a.toml")
    second = write(tmp_path, VALID.replace("steps = 60", "steps = 30"), "b.toml")
    with pytest.raises(SuiteError) as err:
        check_unique_ids([load_suite(first), load_suite(second)])
    assert err.value.key == "suite.id" and str(first) in str(err.value) and err.value.file == str(second)
    check_unique_ids([load_suite(first)])  # one suite, or the same suite named twice, is fine
    monkeypatch.setattr(cli, "run_case", lambda *a, **k: pytest.fail("trained despite a duplicate suite id"))
    for command in ("list", "run"):
        assert main([command, str(tmp_path), "--out", str(tmp_path / "out")] if command == "run"
                    else [command, str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"{second}: suite.id: 'test.tiny' is also the id of {first}" in err, err
    assert not (tmp_path / "out").exists()
    assert main(["list", str(first), str(first), str(tmp_path / "." / "a.toml")]) == 0  # one file named thrice


# ----------------------------------------------------------------------------- unwritable outputs

def _no_training(monkeypatch):
    import harness.cli as cli
    monkeypatch.setattr(cli, "run_case", lambda *a, **k: pytest.fail("trained before checking --out"))


def test_run_out_that_is_a_file_is_exit_2_before_training(tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    suite = write(tmp_path, SMALL)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, phrase in ((blocker, "it is a file"), (blocker / "below", "cannot write there")):
        assert main(["run", str(suite), "--device", "cpu", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        last = err.splitlines()[-1]  # after the old sweep form's deprecation line
        assert last.startswith(f"theory-harness: error: {out}: --out: ") and phrase in last, err
        assert "Traceback" not in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_run_out_read_only_is_exit_2_before_training(tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main(["run", str(write(tmp_path, SMALL)), "--device", "cpu", "--out", str(out)]) == 2
    finally:
        out.chmod(0o700)
    assert f"{out}: --out: expected a writable folder" in capsys.readouterr().err


def test_run_out_that_refuses_writes_is_exit_2_before_training(tmp_path, capsys, monkeypatch):
    """A folder this process cannot write in (as root a chmod does not stop writes: simulated)."""
    import harness.output.records as records

    def refused(*a, **k):
        raise PermissionError(13, "Permission denied")

    _no_training(monkeypatch)
    monkeypatch.setattr(records.tempfile, "TemporaryFile", refused)
    out = tmp_path / "ro"
    assert main(["run", str(write(tmp_path, SMALL)), "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: --out: expected a writable folder, cannot write there (Permission denied)" in err


def test_a_write_that_fails_mid_run_is_exit_2(tmp_path, capsys, monkeypatch):
    import harness.cli as cli

    def full(path, payload):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(cli, "write_json_atomic", full)
    text = SMALL.replace("lr = [0.1, 0.2]", "lr = 0.1").replace("steps = 60", "steps = 20").replace(
        "within = 60", "within = 20")
    assert main(["run", str(write(tmp_path, text)), "--device", "cpu", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and str(tmp_path / "o") in err and "Traceback" not in err


def test_threads_must_be_positive(tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    assert main(["run", str(write(tmp_path, SMALL)), "--threads", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--threads" in capsys.readouterr().err


# ----------------------------------------------------------------------------- wrong-shape records

@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """One short run: two case records and a sweep record, valid."""
    tmp = tmp_path_factory.mktemp("records")
    suite = write(tmp, SMALL + SWEEP_OK)
    assert main(["run", str(suite), "--device", "cpu", "--out", str(tmp / "base")]) == 0
    return tmp / "base"


def _copy(good_run, dest: Path) -> tuple[Path, Path]:
    """A copy of the good run; returns (its folder, the path of its first case record)."""
    import shutil
    shutil.copytree(good_run, dest)
    case = sorted(p for p in dest.rglob("lr=*.json"))[0]
    return dest, case


def _set(record, path, value):
    """Set (or, with value DELETE, remove) ``record[path]``, path a tuple of keys/indices."""
    *parents, last = path
    for key in parents:
        record = record[key]
    if value is DELETE:
        del record[last]
    else:
        record[last] = value


DELETE = object()

# (key path in the record -> new value, the field the message names, a phrase)
WRONG_SHAPES = [
    (("expectations", 0, "name"), DELETE, "expectations[0].name", "missing; expected a string"),
    (("expectations",), "hovers", "expectations", "expected a list"),
    (("expectations", 0), "hovers", "expectations[0]", "expected an object"),
    (("expectations", 0, "passed"), "yes", "expectations[0].passed", "true or false"),
    (("expectations", 0, "passed"), 1, "expectations[0].passed", "true or false"),
    (("expectations", 0, "measured"), "big", "expectations[0].measured", "a number or null"),
    (("expectations", 0, "margin"), True, "expectations[0].margin", "a number or null"),
    (("expectations", 0, "margin"), [0.1], "expectations[0].margin", "a number or null"),
    (("expectations", 0, "window"), [0], "expectations[0].window", "two integers"),
    (("expectations", 0, "limits"), [0, 1, 2], "expectations[0].limits", "[low, high]"),
    (("expectations", 0, "last"), [[1]], "expectations[0].last[0]", "[step, value]"),
    (("expectations", 0, "statistic"), {"name": "max"}, "expectations[0].statistic", "a string or null"),
    (("expectations", 0, "measure"), DELETE, "expectations[0].measure", "missing"),
    (("expectations", 1, "name"), "sharpness_below_edge", "expectations[1].name", "distinct"),
    (("trajectories", "loss", "values"), "ragged", "trajectories.loss.values", "expected a list"),
    (("trajectories", "loss", "steps"), [0, 1], "trajectories.loss.values", "one value per step"),
    (("trajectories", "loss", "steps", 0), "0", "trajectories.loss.steps[0]", "an integer step"),
    (("trajectories", "loss", "values", 0), [1.0], "trajectories.loss.values[0]", "a number or null"),
    (("trajectories", "loss"), [1, 2], "trajectories.loss", "an object with steps and values"),
    (("trajectories",), [], "trajectories", "an object"),
    (("predictions", "gd_edge on lambda_max", "measure"), DELETE, "predictions.gd_edge on lambda_max.measure", "missing"),
    (("predictions", "gd_edge on lambda_max", "values"), [1.0], "predictions.gd_edge on lambda_max.values",
     "one value per step"),
    (("events", "low_loss"), "12", "events.low_loss", "an integer"),
    (("suite",), ["test.tiny"], "suite", "expected an object"),
    (("suite", "id"), DELETE, "suite.id", "missing"),
    (("suite", "id"), 7, "suite.id", "a string"),
    (("case", "id"), None, "case.id", "a string"),
    (("case", "params"), [], "case.params", "an object or null"),
    (("case",), DELETE, "case", "missing"),
    (("status",), "ok", "status", "one of ['passed', 'failed', 'skipped']"),
    (("status",), 0, "status", "a string"),
    (("run_id",), 20260101, "run_id", "a string"),
    (("wall_time_s",), None, "wall_time_s", "a number"),
    (("diverged_at",), 1.5, "diverged_at", "a step (an integer >= 0) or null"),
    (("trajectories", "loss", "steps", 0), -1, "trajectories.loss.steps[0]", "an integer step >= 0"),
    (("trajectories", "loss", "steps", 0), 2 ** 70, "trajectories.loss.steps[0]", "an integer step >= 0"),
    (("expectations", 0, "window"), [50, 0], "expectations[0].window", "first <= last"),
    (("info",), [], "info", "an object"),
    (("info", "last_step"), "60", "info.last_step", "an integer"),
    (("environment", "git"), "abc", "environment.git", "an object"),
    (("environment",), "cpu", "environment", "an object"),
    (("schema",), "theory-harness/result/2", "schema", "unsupported record version"),
]


def _wrong_shape_copy(good_run, dest: Path, path, value) -> tuple[Path, Path]:
    """A copy of the good run whose first case record has ``path`` set to ``value``: (its folder,
    that record's path)."""
    head, case = _copy(good_run, dest)
    record = json.loads(case.read_text())
    _set(record, path, value)
    case.write_text(json.dumps(record))
    return head, case


def _assert_exit_2_naming(args, case, field, phrase, capsys):
    assert main(args) == 2, args
    err = capsys.readouterr().err
    assert err.startswith(f"theory-harness: error: {case}: {field}: ") and phrase in err, err
    assert "Traceback" not in err


WRONG_SHAPE_IDS = [f"{w[2]}#{i}" for i, w in enumerate(WRONG_SHAPES)]


@pytest.mark.parametrize("path,value,field,phrase", WRONG_SHAPES, ids=WRONG_SHAPE_IDS)
def test_wrong_shape_record_is_exit_2_in_compare(good_run, tmp_path, capsys, path, value, field, phrase):
    head, case = _wrong_shape_copy(good_run, tmp_path / "head", path, value)
    _assert_exit_2_naming(["compare", str(good_run), str(head)], case, field, phrase, capsys)


@pytest.mark.parametrize("path,value,field,phrase", WRONG_SHAPES, ids=WRONG_SHAPE_IDS)
def test_wrong_shape_record_is_exit_2_in_report(good_run, tmp_path, capsys, path, value, field, phrase):
    head, case = _wrong_shape_copy(good_run, tmp_path / "head", path, value)
    _assert_exit_2_naming(["report", str(head), "--out", str(tmp_path / "rep")], case, field, phrase, capsys)


@pytest.mark.parametrize("edit,field,phrase", [
    (lambda r: r.pop("group"), "group", "missing"),
    (lambda r: r.update(cases=[1]), "cases[0]", "a case id"),
    (lambda r: r["expectations"][0].update(per_case={"a": "x"}), "expectations[0].per_case.a", "a number or null"),
    (lambda r: r.update(status="skipped"), "status", "one of ['passed', 'failed']"),
])
def test_wrong_shape_sweep_record(good_run, tmp_path, capsys, edit, field, phrase):
    head, _ = _copy(good_run, tmp_path / "head")
    (sweep,) = head.rglob("sweep-*.json")
    record = json.loads(sweep.read_text())
    edit(record)
    sweep.write_text(json.dumps(record))
    assert main(["compare", str(good_run), str(head)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"theory-harness: error: {sweep}: {field}: ") and phrase in err, err


def test_records_that_are_not_records(good_run, tmp_path, capsys):
    head, case = _copy(good_run, tmp_path / "head")
    case.write_text("[1, 2, 3]")  # valid JSON, no record: named on its own it is an error...
    assert main(["report", str(case), "--out", str(tmp_path / "rep")]) == 2
    assert f"{case}: schema: expected a result record" in capsys.readouterr().err
    case.write_text('{"schema": "theory-harness/result/1", "nested": ' + "[" * 100000 + "]" * 100000 + "}")
    assert main(["compare", str(good_run), str(head)]) == 2
    err = capsys.readouterr().err
    assert str(case) in err and "Traceback" not in err


def test_valid_records_pass_the_schema(good_run):
    for f in good_run.rglob("*.json"):
        record = json.loads(f.read_text())
        if record["schema"] != "theory-harness/summary/1":
            validate_record(record, f)
    record = json.loads(sorted(good_run.rglob("lr=*.json"))[0].read_text())
    for key in ("predictions", "events", "info", "environment", "trajectories"):  # optional in the schema
        trimmed = copy.deepcopy(record)
        del trimmed[key]
        validate_record(trimmed, "x.json")
    with pytest.raises(Exception, match=r"^x.json: expectations\[0\].name: missing"):
        bad = copy.deepcopy(record)
        del bad["expectations"][0]["name"]
        validate_record(bad, "x.json")


def test_infinities_as_the_writer_spells_them_are_read_back(good_run, tmp_path, capsys):
    """JSON has no infinity: "inf" in a verdict is a number to compare and report, not a crash."""
    head, case = _copy(good_run, tmp_path / "head")
    record = json.loads(case.read_text())
    record["expectations"][0].update(passed=False, measured="inf", margin="-inf", limits=[None, "inf"])
    record["expectations"][1].update(limits=[None, "inf"], last=[[3, "-inf"]])  # a `reaches` check's deadline
    record["status"] = "failed"
    case.write_text(json.dumps(record))
    assert main(["compare", str(good_run), str(head)]) == 1  # a regression: exit 1, and only that
    assert "REGRESSED" in capsys.readouterr().out
    assert main(["report", str(head), "--out", str(tmp_path / "rep")]) == 0
    assert "inf" in (tmp_path / "rep" / "index.html").read_text()


def test_an_unforeseen_error_is_exit_2_in_one_line(tmp_path, capsys, monkeypatch):
    import harness.cli as cli

    def broken(paths):
        raise KeyError("boom")

    monkeypatch.setattr(cli, "load_suites", broken)
    assert main(["list", str(tmp_path)]) == 2  # never 1: that means an expectation failed
    err = capsys.readouterr().err
    assert err.startswith("theory-harness: error: unexpected KeyError: 'boom'") and "Traceback" not in err


@pytest.fixture
def blocker(tmp_path):
    """A plain file where an output folder might be asked for."""
    path = tmp_path / "file"
    path.write_text("x")
    return path


def test_a_report_out_that_is_a_file_is_exit_2(good_run, blocker, capsys):
    assert main(["report", str(good_run), "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert f"{blocker}: --out: expected a folder to write into, but it is a file" in err and "Traceback" not in err


def test_a_markdown_output_that_is_a_folder_is_exit_2(good_run, tmp_path, capsys):
    assert main(["compare", str(good_run), str(good_run), "--markdown", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: --markdown: expected a file to write, but it is a folder" in err and "Traceback" not in err


def test_a_markdown_output_inside_a_file_is_exit_2(good_run, blocker, capsys):
    assert main(["compare", str(good_run), str(good_run), "--markdown", str(blocker / "c.md")]) == 2
    assert f"{blocker}: --markdown: " in capsys.readouterr().err


def test_a_markdown_output_in_a_new_folder_is_written(good_run, tmp_path):
    assert main(["compare", str(good_run), str(good_run), "--markdown", str(tmp_path / "new" / "c.md")]) == 0
    assert (tmp_path / "new" / "c.md").read_text().startswith("### theory-harness")
