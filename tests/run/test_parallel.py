"""``theory-harness run --jobs N`` (worker processes) and ``--shard K/M`` (issue 17, item 2): the
records a serial run writes, shards that cover a selection once with sweep groups whole, the
merged shard folders read by ``compare`` and ``report``, bad values exit 2, and Ctrl-C, kill and
a dying worker stop the run with a message, no worker left behind and no half-written record."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import load_suites, main
from harness.errors import HarnessError
from harness.run.parallel import (ParallelProgress, _find, _task, parse_jobs, parse_shard, run_parallel, select_shard,
                              shard_of, units)
from harness.output.records import read_records, validate_record
from harness.run.runner import expand, group_key
from suite_text import SWEEP, VALID, write

ROOT = Path(__file__).resolve().parents[2]
# process groups, SIGKILL and sending SIGINT: POSIX only
posix_signals = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and process groups")

# VALID (4 cases, no sweep), the same with a sweep expectation along lr (2 groups of 2), and one
# whose sweep expectation fails (so both runs exit 1 and write a failed sweep record)
SWEPT = VALID.replace('id = "test.tiny"', 'id = "test.swept"') + SWEEP.replace("BOUND", "0.0")
FAILING = VALID.replace('id = "test.tiny"', 'id = "test.failing"').replace("seeds = [0, 1]", "seeds = [0, 1, 2]") \
    + SWEEP.replace("BOUND", "-2.0")
# two sweep expectations along different axes: every case of a seed is in one unit
TWO_AXES = (VALID.replace('id = "test.tiny"', 'id = "test.two_axes"')
            .replace('kind = "gd"\nlr = [0.1, 0.2]', 'kind = "heavy_ball"\nlr = [0.1, 0.2]\nmomentum = [0.0, 0.5]')
            + SWEEP.replace("BOUND", "1.0")
            + SWEEP.replace("BOUND", "1.0").replace('across = "lr"', 'across = "momentum"')
            .replace("larger_lr_lower_loss", "momentum_sweep"))


# the [sweep] form: each point a variant of the suite with its own update rule and step budget
# (a zip block and a product block, so the sweep groups differ in shape as well)
VARIANTS = '''
schema = 1

[suite]
id = "test.variants"
claim = "each sweep point runs its own variant: its update rule, its step budget"
source = "test"
devices = ["cpu"]
dtype = "float64"
seeds = [0, 1]
slow = false

[problem]
kind = "quadratic"
eigenvalues = [4.0, 1.0, 0.5]

[optimizer]

[run]

[[sweep]]
mode = "zip"
"optimizer.kind" = ["gd", "gd"]
"optimizer.lr" = [0.1, 0.2]
"run.steps" = [40, 60]

[[sweep]]
"optimizer.kind" = ["heavy_ball"]
"optimizer.lr" = [0.05, 0.1]
"optimizer.momentum" = [0.5]
"run.steps" = [50]

[measures.loss]
every = 1

[[expect]]
name = "loss_falls"
measure = "loss"
statistic = "last"
check = "le"
bound = 0.5
''' + SWEEP.replace("BOUND", "0.0")


def suites_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir()
    write(folder, VALID, "a_tiny.toml")
    write(folder, SWEPT, "b_swept.toml")
    write(folder, FAILING, "c_failing.toml")
    return folder


_VOLATILE = {"wall_time_s", "run_id", "pid", "_path"}


def strip(obj):
    """A record without what differs between two runs of the same cases (times, run id, pid)."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in _VOLATILE}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def run_folder(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def files(run: Path) -> dict[str, dict]:
    return {str(f.relative_to(run)): json.loads(f.read_text()) for f in sorted(run.rglob("*")) if f.is_file()}


def test_jobs_2_writes_exactly_the_records_of_a_serial_run(tmp_path, capsys):
    folder = suites_folder(tmp_path)
    # one torch thread in both runs, so even the environment's torch_threads agrees
    serial = main(["run", str(folder), "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "serial")])
    text_serial = capsys.readouterr().out
    parallel = main(["run", str(folder), "--device", "cpu", "--jobs", "2", "--out", str(tmp_path / "j2")])
    text_parallel = capsys.readouterr().out
    assert serial == parallel == 1  # test.failing's sweep expectation fails in both
    a, b = run_folder(tmp_path / "serial"), run_folder(tmp_path / "j2")
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    assert len([k for k in fa if "sweep-" in k]) == 2 + 3 and len(fa) == 4 + 4 + 6 + 5 + 1  # cases, sweeps, summary
    for name in fa:
        assert strip(fa[name]) == strip(fb[name]), name
    assert fb["summary.json"]["run_id"] == b.name
    assert {r["environment"]["torch_threads"] for k, r in fb.items() if k != "summary.json" and "sweep-" not in k} == {1}
    assert text_serial.replace(str(a), "RUN") == text_parallel.replace(str(b), "RUN")
    # the pid says the cases ran elsewhere: in the workers (two, unless one took every unit while
    # the other was still importing torch), not in this process
    pids = {r["environment"]["pid"] for k, r in fb.items() if "environment" in r}
    assert os.getpid() not in pids and len(pids) in (1, 2)


def test_workers_run_each_sweep_point_as_its_variant(tmp_path, capsys):
    """A worker loads the suite file itself and must run the case of that point's variant (its
    rule, its steps), not the suite's first variant: the records equal a serial run's."""
    path = write(tmp_path, VARIANTS, "variants.toml")
    assert main(["run", str(path), "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "serial")]) == 0
    assert main(["run", str(path), "--device", "cpu", "--jobs", "2", "--out", str(tmp_path / "j2")]) == 0
    capsys.readouterr()
    fa, fb = files(run_folder(tmp_path / "serial")), files(run_folder(tmp_path / "j2"))
    assert sorted(fa) == sorted(fb) and len(fa) == 8 + 4 + 1  # cases, sweep groups, summary
    for name in fa:
        assert strip(fa[name]) == strip(fb[name]), name
    cases = [r for r in fb.values() if r.get("schema") == "theory-harness/result/1"]
    assert {(r["case"]["optimizer"], r["case"]["steps"]) for r in cases} == {("gd", 40), ("gd", 60), ("heavy_ball", 50)}
    assert all(r["info"]["last_step"] == r["case"]["steps"] for r in cases)  # each ran its own budget
    assert all(len(r["trajectories"]["loss"]["steps"]) == r["case"]["steps"] + 1 for r in cases)
    assert os.getpid() not in {r["environment"]["pid"] for r in cases}
    pid = {r["case"]["id"]: r["environment"]["pid"] for r in cases}  # a sweep group ran in one worker
    groups = [r for r in fb.values() if r.get("schema") == "theory-harness/sweep/1"]
    assert len(groups) == 4 and all(len({pid[c] for c in g["cases"]}) == 1 for g in groups), groups


def test_jobs_1_runs_in_this_process_like_a_serial_run(tmp_path, capsys):
    path = write(tmp_path, VARIANTS, "variants.toml")
    assert main(["run", str(path), "--device", "cpu", "--out", str(tmp_path / "serial")]) == 0
    assert main(["run", str(path), "--device", "cpu", "--jobs", "1", "--out", str(tmp_path / "j1")]) == 0
    capsys.readouterr()
    fa, fb = files(run_folder(tmp_path / "serial")), files(run_folder(tmp_path / "j1"))
    assert sorted(fa) == sorted(fb) and {name: strip(r) for name, r in fa.items()} == \
        {name: strip(r) for name, r in fb.items()}
    assert {r["environment"]["pid"] for r in fb.values() if "environment" in r} == {os.getpid()}


def test_a_worker_finds_its_case_by_id_in_the_variants_it_expands(tmp_path):
    (suite,) = load_suites([str(write(tmp_path, VARIANTS, "variants.toml"))])
    cases = expand(suite, ["cpu"])
    again = {c.id: c for c in expand(load_suites([suite.file])[0])}  # what a worker reads
    for i, case in enumerate(cases):
        found = _find(again, _task(i, case))
        assert found == dataclasses.replace(case, suite=found.suite) and found.suite is not case.suite
        assert found.suite.steps == case.suite.steps and found.suite.optimizer_kind == case.suite.optimizer_kind
        assert found.suite.optimizer_table == case.suite.optimizer_table
    # a case with more than its coordinates (a calibration's deliberate error) keeps them
    odd = dataclasses.replace(cases[-1], perturbation=(("optimizer.lr", 1.1),))
    found = _find(again, _task(0, odd))
    assert found.perturbation == odd.perturbation and found.id == odd.id and found.suite.optimizer_kind == "heavy_ball"
    with pytest.raises(HarnessError, match="does not find the case"):
        _find({}, _task(0, cases[0]))


def test_jobs_honours_threads(tmp_path, capsys):
    assert main(["run", str(write(tmp_path)), "--device", "cpu", "--jobs", "2", "--threads", "2",
                 "--out", str(tmp_path / "o")]) == 0
    records = read_records(tmp_path / "o")
    assert len(records) == 4 and {r["environment"]["torch_threads"] for r in records} == {2}


def _catalogue_cases():
    return [c for s in load_suites([str(ROOT / "suites")]) for c in expand(s, ["cpu"])]


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_cover_the_catalogue_once_with_sweep_groups_whole(count):
    cases = _catalogue_cases()
    shards = [select_shard(cases, k, count) for k in range(1, count + 1)]
    flat = [i for s in shards for i in s]
    assert sorted(flat) == list(range(len(cases)))  # every case in exactly one shard
    where = {i: k for k, s in enumerate(shards) for i in s}
    groups: dict[tuple, set] = {}
    for i, c in enumerate(cases):
        for e in c.suite.sweep_expectations:
            groups.setdefault((c.suite.id, group_key(c, e.across)), set()).add(where[i])
    assert groups and all(len(s) == 1 for s in groups.values())  # no sweep group split
    # units dealt out in turn: each unit whole in one shard, the shards' unit counts differ by one at most
    found = units(cases)
    assert all(len({where[i] for i in u}) == 1 for u in found)
    per_shard = [sum(where[u[0]] == k for u in found) for k in range(count)]
    assert max(per_shard) - min(per_shard) <= 1 and sum(per_shard) == len(found), per_shard
    single = [c for c in cases if not c.suite.sweep_expectations]  # units of one case: as even as can be
    sizes = [len(select_shard(single, k, count)) for k in range(1, count + 1)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(single), sizes


def test_units_join_sweep_groups_that_share_a_case(tmp_path):
    (suite,) = load_suites([str(write(tmp_path, TWO_AXES))])
    cases = expand(suite, ["cpu"])  # lr x momentum x seed = 8 cases
    found = units(cases)
    assert sorted(len(u) for u in found) == [4, 4]  # one unit per seed: the lr and momentum groups meet
    assert all(len({cases[i].seed for i in u}) == 1 for u in found)
    (plain,) = load_suites([str(write(tmp_path, VALID, "plain.toml"))])
    assert [len(u) for u in units(expand(plain, ["cpu"]))] == [1, 1, 1, 1]


def test_the_partition_does_not_depend_on_the_order_of_the_paths():
    """Deterministic by suite id and sweep group: the suites read in another order (another
    job of the matrix listing the folders differently) give every case the same shard."""
    suites = load_suites([str(ROOT / "suites")])
    cases = [c for s in suites for c in expand(s, ["cpu"])]
    full = {(c.suite.id, c.id): s for c, s in zip(cases, shard_of(cases, 4))}
    random.Random(0).shuffle(suites)
    shuffled = [c for s in suites for c in expand(s, ["cpu"])]
    assert {(c.suite.id, c.id): s for c, s in zip(shuffled, shard_of(shuffled, 4))} == full
    assert len(set(full.values())) == 4


@dataclasses.dataclass
class Sharded:
    """One whole run of :func:`suites_folder` and the same run in 3 shards (under ``ci/``)."""
    tmp: Path
    whole_code: int
    codes: list[int]

    @staticmethod
    def key(r: dict) -> tuple[str, str]:
        return r["suite"]["id"], r.get("group") or r["case"]["id"]

    def whole(self) -> dict:
        return {self.key(r): strip(r) for r in read_records(self.tmp / "whole", schemas=(
            "theory-harness/result/1", "theory-harness/sweep/1"))}

    def per_shard(self) -> list[list[dict]]:
        return [read_records(self.tmp / "ci" / f"shard-{k}", schemas=("theory-harness/result/1",
                                                                      "theory-harness/sweep/1")) for k in (1, 2, 3)]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Sharded:
    tmp = tmp_path_factory.mktemp("sharded")
    folder = suites_folder(tmp)
    with contextlib.redirect_stdout(io.StringIO()):
        whole_code = main(["run", str(folder), "--device", "cpu", "--threads", "1", "--out", str(tmp / "whole")])
        codes = [main(["run", str(folder), "--device", "cpu", "--threads", "1", "--shard", f"{k}/3",
                       "--out", str(tmp / "ci" / f"shard-{k}")]) for k in (1, 2, 3)]
    return Sharded(tmp, whole_code, codes)


def test_shards_cover_the_whole_run_once(sharded):
    whole = sharded.whole()
    keys = [{sharded.key(r) for r in rs} for rs in sharded.per_shard()]
    assert all(keys) and sum(map(len, keys)) == len(whole) and set().union(*keys) == set(whole)  # disjoint cover


def test_shards_merged_equal_the_whole_run(sharded):
    merged = {sharded.key(r): strip(r) for rs in sharded.per_shard() for r in rs}
    assert merged == sharded.whole()


def test_a_sweep_record_lies_in_the_shard_of_its_cases(sharded):
    for rs in sharded.per_shard():
        ids = {(r["suite"]["id"], r["case"]["id"]) for r in rs if "case" in r}
        for r in rs:
            if r["schema"] == "theory-harness/sweep/1":
                assert {(r["suite"]["id"], c) for c in r["cases"]} <= ids


def test_the_failing_sweep_makes_its_run_exit_1(sharded):
    assert sharded.whole_code == 1
    assert sharded.codes.count(1) >= 1 and set(sharded.codes) <= {0, 1}  # the failing sweep's shard exits 1, the others 0


def test_each_shards_summary_records_its_shard(sharded):
    summaries = [json.loads(next((sharded.tmp / "ci" / f"shard-{k}").rglob("summary.json")).read_text())
                 for k in (1, 2, 3)]
    assert [s["shard"]["index"] for s in summaries] == [1, 2, 3] and sum(s["shard"]["cases"] for s in summaries) == 14


def test_compare_reads_the_shard_folders_as_one_run(sharded, capsys):
    # the CI artifacts, downloaded under one parent, read as one catalogue
    assert main(["compare", str(sharded.tmp / "whole"), str(sharded.tmp / "ci")]) == 0
    out = capsys.readouterr().out
    assert " 0 regressed" in out and " 0 new, 0 gone" in out


def test_report_reads_the_shard_folders_as_one_run(sharded, capsys, tmp_path):
    assert main(["report", str(sharded.tmp / "ci"), "--out", str(tmp_path / "report")]) == 0
    assert "14 cases (0 failed" in capsys.readouterr().out


def test_an_empty_shard_succeeds_with_an_empty_summary(tmp_path, capsys):
    one = write(tmp_path, VALID.replace("seeds = [0, 1]", "seeds = [0]").replace("lr = [0.1, 0.2]", "lr = 0.1"))
    codes = [main(["run", str(one), "--device", "cpu", "--shard", f"{k}/2", "--out", str(tmp_path / f"o{k}")])
             for k in (1, 2)]
    text = capsys.readouterr().out
    assert sorted(codes) == [0, 0] and "(no cases in this shard)" in text and "0 of the 1 cases" in text
    assert sorted(len(read_records(tmp_path / f"o{k}")) for k in (1, 2)) == [0, 1]


PLUGIN = '''
from harness import PREDICTIONS


@PREDICTIONS.register("th_parallel_edge")
def th_parallel_edge(lr: float) -> float:
    return 2.0 / lr
'''


def test_workers_load_the_plugins_the_run_names(tmp_path, monkeypatch, capsys):
    (tmp_path / "th_parallel_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(tmp_path, VALID.replace('predict = "gd_edge"', 'predict = "th_parallel_edge"'))
    code = main(["run", str(path), "--device", "cpu", "--jobs", "2", "--plugin", "th_parallel_plugin",
                 "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
    assert len(read_records(tmp_path / "o")) == 4


@pytest.mark.parametrize("option, value", [("--shard", "0/3"), ("--shard", "4/3"), ("--shard", "1/0"),
                                           ("--shard", "3/2"), ("--shard", "x"), ("--shard", "2"), ("--shard", "a/b"),
                                           ("--shard", "-1/3"), ("--shard", "1/2/3"),
                                           ("--jobs", "0"), ("--jobs", "-2"), ("--jobs", "two"), ("--jobs", "1.5")])
def test_bad_shard_or_jobs_exits_2_naming_the_option(tmp_path, capsys, option, value):
    assert main(["run", str(write(tmp_path)), "--device", "cpu", f"{option}={value}", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected" in err and repr(value) in err
    assert not (tmp_path / "o").exists()  # nothing ran


def test_parse_shard_reads_k_of_m():
    assert parse_shard("2/5") == (2, 5) and parse_shard(" 1/1 ") == (1, 1)


def test_parse_jobs_reads_a_count_or_auto():
    assert parse_jobs("3") == 3 and parse_jobs("auto") >= 1


def test_run_parallel_refuses_fork():
    with pytest.raises(ValueError, match="spawn or forkserver"):
        run_parallel([], [[0]], 2, 1, [], lambda i, r: None, start_method="fork")


def test_progress_line_on_a_terminal_names_each_worker():
    stream = Tty()
    p = ParallelProgress(3, stream)
    p.start(0, "suite.a lr=0.1-seed=0-cpu")
    p.start(1, "suite.b seed=1-cpu")
    p.step(1, 50, 60)
    p.finished(0)
    p.done()
    text = stream.getvalue()
    assert "\r\033[K[0/3 done] w1: suite.a lr=0.1-seed=0-cpu 0/1" in text
    assert "[0/3 done] w1: suite.a lr=0.1-seed=0-cpu 0/1 | w2: suite.b seed=1-cpu 50/60" in text
    assert text.endswith("\r\033[K[1/3 done] w2: suite.b seed=1-cpu 50/60\r\033[K")
    plain = io.StringIO()  # not a terminal: nothing
    q = ParallelProgress(3, plain)
    q.start(0, "x")
    q.done()
    assert plain.getvalue() == ""


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(scope="module")
def parallel_swept(tmp_path_factory) -> tuple[list[int], str]:
    """SWEPT run by run_parallel on 2 workers: the case indices it reported, and the progress it drew."""
    (suite,) = load_suites([str(write(tmp_path_factory.mktemp("swept"), SWEPT))])
    cases = expand(suite, ["cpu"])
    got: list[int] = []
    stream = Tty()
    run_parallel(cases, units(cases), 2, 1, [], lambda i, r: got.append(i) or None,
                 ParallelProgress(len(cases), stream))
    return got, stream.getvalue()


def test_run_parallel_reports_each_case_once(parallel_swept):
    got, _ = parallel_swept
    assert sorted(got) == [0, 1, 2, 3]


def test_run_parallel_draws_progress(parallel_swept):
    _, text = parallel_swept
    # which worker takes which unit depends on which starts first
    assert ("w1: test.swept " in text or "w2: test.swept " in text) and " 50/60" in text and "[4/4 done]" in text


SLOW = '''
schema = 1

[suite]
id = "test.slow"
claim = "cases that run for minutes"
source = "test"
devices = ["cpu"]
dtype = "float64"
seeds = [0, 1, 2]
report_only = true

[problem]
kind = "quadratic"
eigenvalues = [4.0, 1.0, 0.5]

[optimizer]
kind = "gd"
lr = 0.1

[run]
steps = 1000000

[measures.loss]
every = 100000
'''


def _group_gone(pgid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _signal_state(pid: int) -> str:
    """The signal masks (blocked, ignored, caught) and state of ``pid`` and of the processes of its
    group, from /proc (Linux; elsewhere: unknown)."""
    def one(p: int) -> str:
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            return f"{p}: gone"
        keep = [ln.replace("\t", " ") for ln in lines if ln.split(":")[0] in ("State", "SigBlk", "SigIgn", "SigCgt", "Threads")]
        return f"{p}: " + ", ".join(keep)

    def in_group(p: int) -> bool:
        try:
            return os.getpgid(p) == pid
        except OSError:
            return False

    group = [int(d) for d in os.listdir("/proc") if d.isdigit() and in_group(int(d))] if os.path.isdir("/proc") else []
    return "; ".join(one(p) for p in [pid, *[g for g in group if g != pid]])


def _start_and_wait_for_records(tmp_path: Path, n: int) -> tuple[subprocess.Popen, Path]:
    """A --jobs 2 run in its own session: 4 quick cases, then 3 that take minutes; returns once
    the quick cases' records are written (the workers are then on the slow ones)."""
    folder = tmp_path / "suites"
    folder.mkdir()
    write(folder, VALID, "a_tiny.toml")
    write(folder, SLOW, "b_slow.toml")
    out = tmp_path / "out"
    # Ctrl-C as a terminal's: SIGINT at its default, whatever this process inherited (a shell's
    # background job, e.g. under nohup, ignores it, and a Python started so keeps ignoring it)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(folder), "--device", "cpu", "--jobs", "2",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(list(out.rglob("test.tiny/*.json"))) < n:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    return proc, out


def _no_half_records(out: Path) -> None:
    names = [f.name for f in out.rglob("*") if f.is_file()]
    assert not [n for n in names if n.endswith(".tmp")], names
    for f in out.rglob("*.json"):
        validate_record(json.loads(f.read_text()), f)
    assert not list(out.rglob("summary.json"))  # the run did not finish


@posix_signals
@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_ctrl_c_or_kill_stops_the_workers(tmp_path, how):
    proc, out = _start_and_wait_for_records(tmp_path, 4)
    before = _signal_state(proc.pid)
    if how == "ctrl-c":  # a terminal sends SIGINT to the whole foreground group: the workers too
        os.killpg(proc.pid, signal.SIGINT)
    else:  # kill PID: the parent alone
        os.kill(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # say what the processes were doing, then fail
        pytest.fail(f"the run did not stop within 30 s; before the signal: {before}; now: {_signal_state(proc.pid)}; "
                    f"this test process: {_signal_state(os.getpid())}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == (130 if how == "ctrl-c" else 143), err
    assert ("interrupted" if how == "ctrl-c" else "stopped by SIGTERM") in err and "Traceback" not in err, err
    assert _group_gone(proc.pid), "a worker outlived the run"
    assert len(list(out.rglob("test.tiny/*.json"))) == 4
    _no_half_records(out)


@posix_signals
def test_workers_leave_when_the_parent_is_killed_outright(tmp_path):
    proc, out = _start_and_wait_for_records(tmp_path, 4)
    os.kill(proc.pid, signal.SIGKILL)  # no handler runs: the workers must notice on their own
    proc.communicate(timeout=30)
    try:
        assert _group_gone(proc.pid, within=60), "a worker outlived its killed parent"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _no_half_records(out)


KILLER = '''
import os
import signal

import torch


def data(n=8, d=3, k=1):
    if os.environ.get("THEORY_HARNESS_TEST_PARENT", str(os.getpid())) != str(os.getpid()):
        os.kill(os.getpid(), signal.SIGKILL)  # in a worker (not in the parent reading the suite): the OOM killer
    x = torch.randn(n, d, dtype=torch.float64)
    return x, x[:, :k]


def model(d=3, k=1):
    return torch.nn.Linear(d, k)
'''


@posix_signals
def test_a_worker_that_dies_ends_the_run_with_a_message(tmp_path, monkeypatch, capsys):
    (tmp_path / "th_killer_mod.py").write_text(KILLER)
    monkeypatch.syspath_prepend(str(tmp_path))  # the spawned workers get this process's sys.path
    monkeypatch.setenv("THEORY_HARNESS_TEST_PARENT", str(os.getpid()))
    killer = VALID.replace('id = "test.tiny"', 'id = "test.killer"').replace(
        'kind = "quadratic"\neigenvalues = [4.0, 1.0, 0.5]',
        'kind = "module"\nmodel = "th_killer_mod:model"\ndata = "th_killer_mod:data"\nloss = "mse"')
    killer = killer.replace("[measures.lambda_max]\nevery = 10\ntol = 1e-8", "[measures.lambda_max]\nevery = 10")
    folder = tmp_path / "suites"
    folder.mkdir()
    write(folder, killer, "killer.toml")
    code = main(["run", str(folder), "--device", "cpu", "--jobs", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "worker" in err and "died (killed by SIGKILL) while running test.killer " in err, err
    assert not list((tmp_path / "o").rglob("summary.json"))
