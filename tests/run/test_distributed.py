"""Data-parallel runs (harness.run.distributed): shards, their reductions against a dense float64
reference, refusals, and real 2-process gloo runs compared record by record with one process."""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import SuiteError
from harness.kernels.curvature import gauss_newton_operator, hessian_operator
from harness.kernels.losses import cross_entropy
from harness.run.distributed import (World, check_shardable, shard_bounds, shard_problem, world_from_environment,
                                     SHARDABLE_MEASURES)
from harness.spec.reader import load_suite
from harness.training.problems import Problem
from conftest import tiny_problem

ROOT = Path(__file__).resolve().parents[2]


# --- shards and their reductions, in one process ----------------------------------------------

@pytest.mark.parametrize("n,size", [(10, 3), (257, 2), (7, 7), (100, 4)])
def test_shards_cover_the_examples_once_in_near_equal_parts(n, size):
    bounds = [shard_bounds(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def _shards(obj, size, chunk_size=None):
    """The ``size`` shards of ``obj`` as a data-parallel run cuts them, each with a ``reduce`` that
    counts its calls and returns its input (the sum over shards is taken by the test)."""
    calls = []

    def reduce(t):
        calls.append(t.numel())
        return t

    shards = []
    for r in range(size):
        start, stop = shard_bounds(obj.n, r, size)
        shards.append(dataclasses.replace(obj, inputs=obj.inputs[start:stop], targets=obj.targets[start:stop],
                                          n_total=obj.n, reduce=reduce, chunk_size=chunk_size))
    return shards, calls


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_shard_sums_equal_the_whole_objective(loss):
    """L, grad L, H v (every strategy) and G v: the sum over 3 unequal shards (chunked unequally)
    of each shard's reduced-once quantity equals the whole data set's, in float64; one reduction of
    a parameter-sized vector per product (and one for the gradient with the loss)."""
    kw = {"loss": cross_entropy, "k": 3} if loss == "cross_entropy" else {}
    if loss == "cross_entropy":
        obj, theta = tiny_problem(n=25, **kw)
        obj = dataclasses.replace(obj, targets=torch.arange(25) % 3)
    else:
        obj, theta = tiny_problem(n=25)
    shards, calls = _shards(obj, 3, chunk_size=4)  # shards of 8, 8, 9 examples; chunks of 4, 4 and 1
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    full_l, full_g = obj.value_and_grad(theta)
    l, g = map(sum, zip(*(s.value_and_grad(theta) for s in shards)))
    torch.testing.assert_close(l, full_l, rtol=1e-12, atol=0)
    torch.testing.assert_close(g, full_g, rtol=1e-12, atol=1e-15)
    assert calls == [theta.numel() + 1] * 3  # the gradient and the loss in one reduction
    torch.testing.assert_close(sum(s.value(theta) for s in shards), obj.value(theta), rtol=1e-12, atol=0)
    for strategy in ("double_backward_reused", "double_backward", "forward_over_reverse"):
        calls.clear()
        ops = [hessian_operator(s, theta, strategy) for s in shards]
        before = len(calls)
        hv = sum(op @ v for op in ops)
        torch.testing.assert_close(hv, hessian_operator(obj, theta, strategy) @ v, rtol=1e-10, atol=1e-13)
        assert calls[before:] == [theta.numel()] * 3, strategy  # one reduction per product and shard
        if strategy == "double_backward_reused":
            torch.testing.assert_close(sum(op.gradient for op in ops), full_g, rtol=1e-12, atol=1e-15)
    calls.clear()
    gv = sum(gauss_newton_operator(s, theta) @ v for s in shards)
    torch.testing.assert_close(gv, gauss_newton_operator(obj, theta) @ v, rtol=1e-10, atol=1e-13)
    assert calls == [theta.numel()] * 3


def test_a_shard_weighted_by_its_own_size_is_caught():
    """The fault the weighting exists for: shards weighted n_c / n_shard instead of n_c / n_total
    sum to K times the whole loss."""
    obj, theta = tiny_problem(n=24)
    shards, _ = _shards(obj, 3)
    wrong = [dataclasses.replace(s, n_total=None) for s in shards]
    assert float(sum(s.value(theta) for s in wrong)) == pytest.approx(3 * float(obj.value(theta)), rel=1e-12)


def test_shard_problem_keeps_a_copy_of_its_rows_and_the_held_out_set_whole():
    obj, theta = tiny_problem(n=11)
    test_obj, _ = tiny_problem(n=5, seed=1)
    problem = Problem(objective=obj, theta0=theta, test=test_obj)
    for rank in range(2):
        part = shard_problem(problem, World(rank, 2))
        start, stop = shard_bounds(11, rank, 2)
        assert torch.equal(part.objective.inputs, obj.inputs[start:stop]) and part.objective.n_total == 11
        assert part.objective.inputs.untyped_storage().data_ptr() != obj.inputs.untyped_storage().data_ptr()
        assert part.test is test_obj and torch.equal(part.theta0, theta)


def test_more_processes_than_examples_is_refused_naming_the_file():
    obj, theta = tiny_problem(n=3)
    with pytest.raises(SuiteError, match=r"x\.toml: problem: 3 training example\(s\) cannot be shared among 4"):
        shard_problem(Problem(objective=obj, theta0=theta), World(0, 4), "x.toml")


def test_a_sharded_objective_has_no_random_subset():
    obj, _ = tiny_problem(n=8)
    shard = _shards(obj, 2)[0][0]
    with pytest.raises(ValueError, match="no random subset"):
        shard.subset(0.5)


@pytest.mark.parametrize("env,expected", [
    ({}, None), ({"WORLD_SIZE": "1", "RANK": "0"}, None),
    ({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "1"}, World(2, 4, 1))])
def test_the_world_is_read_from_torchruns_environment(env, expected):
    assert world_from_environment(env) == expected


# --- what cannot run data-parallel is refused, naming the file and key ------------------------

SUITE = '''
schema = 1

[suite]
id = "test.dp_eos_short"
claim = "A short edge-of-stability run: lambda_max rises to 2/eta and the loss falls non-monotonically."
source = "test"
devices = ["cpu"]
dtype = "float64"
seeds = [0]

[problem]
kind = "mlp"
data = "gaussian_teacher"
n_samples = 257                    # 128 + 129 over two processes
input_dim = 20
n_outputs = 1
widths = [32, 32]
activation = "tanh"
loss = "mse"
chunk_size = 50                    # unequal chunks in each shard

[optimizer]
kind = "gd"
lr = 0.4

[run]
steps = 120

[measures.loss]
[measures.grad_norm]
[measures.lambda_max]
tol = 1e-6
max_iter = 100
every = 10

[measures.jacobian_norm]           # a mean over the examples: the shards' sums reduced
every = 40

[measures.jacobian_operator_norm]  # a maximum over the examples: the shards' maxima reduced
every = 40

[[expect]]
name = "sharpens"
measure = "lambda_max"
statistic = "last_over_first"
check = "ge"
bound = 1.0
'''


def _write(folder: Path, text: str, name: str = "dp.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


@pytest.mark.parametrize("change,key", [
    (("[measures.grad_norm]", "[measures.grad_norm]\n[measures.lip]\nkind = \"pairwise_lipschitz\""), "measures.lip"),
    (("kind = \"gd\"", "kind = \"scaled_sgd\"\nbatch_size = 32"), "optimizer.kind"),
    (("every = 10", "every = 10\npresample = 0.5"), "measures.lambda_max.presample"),
    (("[measures.grad_norm]", "[measures.grad_norm]\n[measures.sr]\nkind = \"soft_rank\"\ninputs = \"train\""),
     "measures.sr.inputs"),
])
def test_what_reads_the_whole_data_set_is_refused(tmp_path, change, key):
    suite = load_suite(_write(tmp_path, SUITE.replace(*change)))
    with pytest.raises(SuiteError, match=rf"dp\.toml: {key}: .*data-parallel"):
        check_shardable([suite])


def test_every_shardable_measure_is_a_registered_kind():
    from harness.measures import MEASURES

    assert SHARDABLE_MEASURES <= set(MEASURES.names())


# --- real processes: gloo on this machine -----------------------------------------------------

def _harness(*args, cwd, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def _records(folder: Path) -> dict[str, dict]:
    return {str(p.relative_to(folder).parts[1:]): json.loads(p.read_text()) for p in folder.rglob("*.json")}


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """The short EoS suite run by one process and by two gloo processes under torchrun."""
    tmp = tmp_path_factory.mktemp("dp")
    suite = _write(tmp, SUITE)
    one = _harness("run", suite, "--device", "cpu", "--threads", "1", "--out", tmp / "one", cwd=tmp)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "harness", "run", str(suite), "--device", "cpu", "--threads", "1",
                          "--out", str(tmp / "two")], capture_output=True, text=True, cwd=tmp, timeout=300, env=env)
    return one, two, tmp


def test_two_processes_write_the_records_of_one(one_and_two):
    one, two, tmp = one_and_two
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-3000:] + two.stdout[-3000:] + two.stderr[-3000:]
    a, b = _records(tmp / "one"), _records(tmp / "two")
    assert sorted(a) == sorted(b)  # rank 0 alone wrote: one record per case, one summary
    assert "(data-parallel over 2 processes)" in two.stdout and two.stdout.count("cases: 1 passed") == 1
    for name, ra in a.items():
        rb = b[name]
        if "trajectories" not in ra:
            continue
        assert rb["environment"]["world_size"] == 2 and ra["environment"]["world_size"] == 1
        for m, ta in ra["trajectories"].items():
            va, vb = np.array(ta["values"], dtype=float), np.array(rb["trajectories"][m]["values"], dtype=float)
            assert ta["steps"] == rb["trajectories"][m]["steps"]
            np.testing.assert_allclose(vb, va, rtol=1e-10, atol=0, err_msg=m)
        assert [(v["name"], v["passed"]) for v in ra["expectations"]] == \
            [(v["name"], v["passed"]) for v in rb["expectations"]]


def test_two_processes_reach_the_edge_of_stability(one_and_two):
    """The comparison runs through the edge: lambda_max ends within 10 % of 2/eta = 5 after rising."""
    _, _, tmp = one_and_two
    (rec,) = [r for r in _records(tmp / "two").values() if "trajectories" in r]
    lam = rec["trajectories"]["lambda_max"]["values"]
    assert lam[-1] > 2 * lam[0] and max(lam) > 0.9 * 2 / 0.4


# a plugin that breaks rank 1 after some gradients: it exits (a crash) or sleeps (a hang)
FAULT = '''
import os, sys, time
from harness.kernels import objective

calls = {"n": 0}
real = objective.Objective.value_and_grad

def faulty(self, theta):
    calls["n"] += 1
    if os.environ.get("RANK") == "1" and calls["n"] == 30:
        if os.environ["DP_FAULT"] == "crash":
            print("rank 1 planted crash", file=sys.stderr, flush=True)
            os._exit(3)
        time.sleep(3600)
    return real(self, theta)

objective.Objective.value_and_grad = faulty
'''


@pytest.mark.parametrize("fault", ["crash", "hang"])
def test_a_rank_that_crashes_or_hangs_ends_the_run_naming_it(tmp_path, fault):
    suite = _write(tmp_path, SUITE)
    (tmp_path / "dp_fault.py").write_text(FAULT, encoding="utf-8")
    env = {**os.environ, "DP_FAULT": fault, "PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.monotonic()
    proc = _harness("run", suite, "--device", "cpu", "--threads", "1", "--nproc", "2", "--dist-timeout", "10",
                    "--plugin", "dp_fault", "--out", tmp_path / "out", cwd=tmp_path, env=env, timeout=240)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    named = "rank 1 exited with code 3" if fault == "crash" else "still running, so stopped: rank(s) 1"
    assert named in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert time.monotonic() - start < 120
    assert not list((tmp_path / "out").rglob("summary.json")) and not list((tmp_path / "out").rglob("*.tmp"))


def test_each_rank_runs_the_command_without_nproc():
    from harness.cli import _without_nproc

    assert _without_nproc(["run", "a.toml", "--nproc", "2", "--device", "cpu", "--nproc=3"]) == \
        ["run", "a.toml", "--device", "cpu"]


@pytest.mark.parametrize("args,message", [
    (["--nproc", "0"], "--nproc: expected a whole number >= 1"),
    (["--dist-timeout", "-1"], "--dist-timeout: expected a number of seconds > 0"),
    (["--nproc", "2", "--jobs", "2"], "--jobs: a data-parallel run"),  # refused before any rank starts
    (["--nproc", "2", "--device", "all"], "--device: a data-parallel run needs one device"),
    (["--nproc", "2", "--out", "{a_file}"], "--out: expected a folder to write into"),
])
def test_bad_data_parallel_options_exit_2_naming_them(tmp_path, capsys, args, message):
    from harness.cli import main

    (tmp_path / "a_file").write_text("")
    args = [a.format(a_file=tmp_path / "a_file") for a in args]
    assert main(["run", str(_write(tmp_path, SUITE)), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_rank_refuses_what_cannot_run_data_parallel_before_joining(tmp_path, capsys, monkeypatch):
    """Under torchrun's environment, --jobs and a measure reading the inputs are refused, exit 2,
    before the rank waits for its peers (no process group is joined: this returns at once)."""
    from harness.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    suite = _write(tmp_path, SUITE)
    assert main(["run", str(suite), "--device", "cpu", "--jobs", "2", "--out", str(tmp_path / "o")]) == 2
    assert "--jobs: a data-parallel run" in capsys.readouterr().err
    lip = _write(tmp_path, SUITE.replace("[measures.grad_norm]", '[measures.grad_norm]\n[measures.lip]\nkind = "pairwise_lipschitz"'), "lip.toml")
    assert main(["run", str(lip), "--device", "cpu", "--out", str(tmp_path / "o")]) == 2
    assert "lip.toml: measures.lip: kind 'pairwise_lipschitz' compares every pair of examples" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


class _ReplayWorld:
    """K shards run one after another in this process with the reductions a K-process run would
    give them: a first pass records each rank's reduced tensors (its reductions return their input),
    a second returns, in the same order, their sum or maximum over the ranks (the measures here
    reduce a fixed sequence of tensors, whatever the values). No threads: torch.func's forward mode
    does not run concurrently in threads of one process."""

    def __init__(self, size):
        self.size = size

    def _shard(self, obj, r, reduce, reduce_max):
        start, stop = shard_bounds(obj.n, r, self.size)
        return dataclasses.replace(obj, inputs=obj.inputs[start:stop], targets=obj.targets[start:stop],
                                   n_total=obj.n, reduce=reduce, reduce_max=reduce_max, offset=start)

    def run(self, obj, fn):
        """``fn(shard)`` for each rank, every reduction as after an all_reduce; the results by rank."""
        seen = [[] for _ in range(self.size)]

        def recorder(r, how):
            return lambda t: seen[r].append((how, t.detach().clone())) or t

        for r in range(self.size):
            fn(self._shard(obj, r, recorder(r, "sum"), recorder(r, "max")))
        assert len({len(s) for s in seen}) == 1, "the ranks reduced different numbers of tensors"
        reduced = []
        for calls in zip(*seen):
            stacked = torch.stack([t for _, t in calls])
            reduced.append(stacked.sum(0) if calls[0][0] == "sum" else stacked.max(0).values)

        def replayer(r):
            it = iter(reduced)
            return lambda t: next(it).clone()

        out = []
        for r in range(self.size):
            replay = replayer(r)
            out.append(fn(self._shard(obj, r, replay, replay)))
        return out


@pytest.mark.parametrize("kind,options", [
    ("jacobian_norm", {}), ("jacobian_norm", {"inputs": "random"}), ("jacobian_operator_norm", {}),
    ("chain_rule_error", {}), ("jacobian_trace_ratio", {}), ("forward_jacobian_norm", {}),
    ("dense_top_eigenvalue", {}), ("dense_top_eigenvalue", {"operator": "gauss_newton"})])
def test_per_example_measures_over_shards_equal_the_whole_data_sets(kind, options):
    """Each rank of a 3-way split (9, 9, 10 examples) reports the single-process value of the
    measure to round-off: means from the shards' sums, maxima from their maxima, the trace
    inequality from its two sums, dense matrices weighted n_shard / n and summed."""
    from harness.measures import MEASURES, StepContext
    from harness.training.optimizers import GD

    obj, theta = tiny_problem(n=28, width=5)
    measure = MEASURES[kind](**options)

    def value(o):
        return measure(StepContext(0, theta, Problem(o, theta), GD(lr=0.1)), {}).value

    whole = value(obj)
    for got in _ReplayWorld(3).run(obj, value):
        assert got == pytest.approx(whole, rel=1e-10, abs=1e-14), (kind, got, whole)
