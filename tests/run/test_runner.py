import pytest
import torch

from harness import expand, load_suite, run_case
from harness.output.records import case_record
from suite_text import VALID, write


@pytest.fixture
def suite(tmp_path):
    return load_suite(write(tmp_path))


def test_expand_is_sweep_times_seeds_times_devices(suite):
    cases = expand(suite)
    assert len(cases) == 2 * 2 * 2
    assert len(expand(suite, ["cpu"])) == 4
    assert {c.id for c in expand(suite, ["cpu"])} == {
        "lr=0.1-seed=0-cpu", "lr=0.1-seed=1-cpu", "lr=0.2-seed=0-cpu", "lr=0.2-seed=1-cpu"}


@pytest.fixture(scope="module")
def first_cpu_result(tmp_path_factory):
    """The result of running the first CPU case of VALID (lr 0.1, seed 0)."""
    return run_case(expand(load_suite(write(tmp_path_factory.mktemp("valid"))), ["cpu"])[0])


def test_a_run_that_meets_its_expectations_passes(first_cpu_result):
    r = first_cpu_result
    assert r.status == "passed", [v.message for v in r.verdicts]


def test_a_run_records_the_lambda_max_trajectory(first_cpu_result):
    lam = first_cpu_result.trajectories["lambda_max"]
    assert lam["steps"] == [0, 10, 20, 30, 40, 50, 60]
    assert lam["values"][0] == pytest.approx(4.0, rel=1e-8)  # the known top eigenvalue
    assert all(lam["aux"]["converged"])


def test_a_run_records_the_loss_at_every_step(first_cpu_result):
    assert len(first_cpu_result.trajectories["loss"]["steps"]) == 61


def test_a_case_record_names_its_schema_with_the_case_parameters(first_cpu_result):
    rec = case_record(first_cpu_result, "run-x")
    assert rec["schema"] == "theory-harness/result/1" and rec["case"]["params"] == {"lr": 0.1}


def test_a_case_record_describes_the_environment(first_cpu_result):
    env = case_record(first_cpu_result, "run-x")["environment"]
    for key in ("torch", "device_name", "dtype", "float32_matmul_precision", "cuda_matmul_allow_tf32", "git", "suite_sha256"):
        assert key in env


def test_a_diverging_run_is_a_failure_not_a_crash(tmp_path):
    # lr = 1e200 on curvature 4: theta_1 ~ 4e200, so L_1 = inf, with no finite explosion before it
    s = load_suite(write(tmp_path, VALID.replace("lr = [0.1, 0.2]", "lr = 1e200")))
    r = run_case(expand(s, ["cpu"])[0])
    assert r.status == "failed" and r.diverged_at == 1 and r.error is None
    assert r.info["divergence"] == "non-finite loss or parameters"
    assert all(f"diverged at step {r.diverged_at}" in v.message for v in r.verdicts)
    assert r.trajectories["loss"]["steps"][-1] == r.diverged_at - 1  # nothing measured at a non-finite iterate


def test_a_finite_explosion_is_a_divergence_measured_at_its_last_step(tmp_path):
    """GD at lr = 1 on curvature 4 multiplies the loss by ~9 a step: after 60 steps it is ~1e57,
    finite. The run stops at the first loss above EXPLOSION_FACTOR * max(|L_0|, 1)."""
    from harness.run.runner import EXPLOSION_FACTOR

    s = load_suite(write(tmp_path, VALID.replace("lr = [0.1, 0.2]", "lr = 1.0")))
    r = run_case(expand(s, ["cpu"])[0])
    loss = r.trajectories["loss"]
    bound = EXPLOSION_FACTOR * max(abs(loss["values"][0]), 1.0)
    first = next(step for step, v in zip(loss["steps"], loss["values"]) if v > bound)
    assert r.error is None and r.status == "failed"
    assert r.diverged_at == first and loss["steps"][-1] == first and r.last_step == first
    assert 5 < first < 30 and all(v <= bound for v in loss["values"][:-1])
    assert "exploding" in r.info["divergence"] and r.info["loss_at_divergence"] == loss["values"][-1]
    assert r.trajectories["lambda_max"]["steps"][-1] == first  # the last step is measured by every measure
    assert all(f"diverged at step {first}" in v.message and "exploding" in v.message for v in r.verdicts)
    assert case_record(r, "x")["diverged_at"] == first


def test_an_expected_explosion_still_passes(tmp_path):
    text = VALID.replace("lr = [0.1, 0.2]", "lr = 1.0") + """
[measures.loss_ratio]

[[expect]]
name = "explodes"
measure = "loss_ratio"
check = "reaches"
direction = "above"
threshold = 1e6
within = 10
allow_divergence = true
"""
    s = load_suite(write(tmp_path, text))
    r = run_case(expand(s, ["cpu"])[0])
    (v,) = [v for v in r.verdicts if v.name == "explodes"]
    assert r.diverged_at is not None and v.passed and v.measured is not None and v.measured < r.diverged_at


def test_a_measure_that_cannot_be_computed_is_nan_with_its_reason(suite, monkeypatch):
    import math

    import harness.measures as measures

    real = measures.LambdaMax.__call__

    def failing(self, ctx, memory):
        if ctx.step == 20:
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return real(self, ctx, memory)

    monkeypatch.setattr(measures.LambdaMax, "__call__", failing)
    r = run_case(expand(suite, ["cpu"])[0])
    lam = r.trajectories["lambda_max"]
    assert r.error is None and lam["steps"] == [0, 10, 20, 30, 40, 50, 60]
    i = lam["steps"].index(20)
    assert math.isnan(lam["values"][i]) and "failed to converge" in lam["aux"]["reason"][i]
    assert lam["aux"]["reason"][0] is None and len(lam["aux"]["converged"]) == 7
    assert not next(v for v in r.verdicts if v.name == "sharpness_below_edge").passed  # a NaN in its window


def test_lanczos_on_an_overflowing_iterate_is_nan_not_a_crash(tmp_path):
    """The reported crash: heavy ball far past its edge drives the loss to ~1e286 before it is
    inf, and the Lanczos tridiagonal of the Hessian there cannot be solved. Here: a quadratic with
    curvature 1e300 (products overflow), measured at step 0 before any explosion."""
    import math

    text = VALID.replace("eigenvalues = [4.0, 1.0, 0.5]", "eigenvalues = [1e300, 1e-300, 0.5]")
    r = run_case(expand(load_suite(write(tmp_path, text)), ["cpu"])[0])
    lam = r.trajectories["lambda_max"]
    assert r.error is None and lam["steps"][0] == 0
    assert math.isnan(lam["values"][0]) and "overflow" in lam["aux"]["reason"][0]


def test_cuda_case_without_a_gpu_is_skipped_with_a_reason(suite):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run_case(expand(suite, ["cuda"])[0])
    assert r.status == "skipped" and "CUDA" in r.skipped


def test_a_crash_inside_a_case_is_reported_as_its_failure(suite, monkeypatch):
    import harness.measures as measures

    real = measures.LambdaMax.__call__

    def broken(self, ctx, memory):
        if ctx.step == 30:
            raise RuntimeError("kernel exploded")
        return real(self, ctx, memory)

    monkeypatch.setattr(measures.LambdaMax, "__call__", broken)
    r = run_case(expand(suite, ["cpu"])[0])
    assert r.status == "failed" and "kernel exploded" in r.error
    assert all("kernel exploded" in v.message and "at step 30" in v.message for v in r.verdicts)
    # every measurement taken before the crash is kept, in the record too
    rec = case_record(r, "x")
    assert rec["trajectories"]["loss"]["steps"] == list(range(31))  # loss is measured before lambda_max
    assert rec["trajectories"]["lambda_max"]["steps"] == [0, 10, 20]
    assert rec["info"]["error_step"] == 30 and rec["status"] == "failed"


def test_a_report_only_case_that_crashes_is_not_passed(tmp_path, monkeypatch):
    import harness.measures as measures

    def broken(self, ctx, memory):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(measures.LambdaMax, "__call__", broken)
    text = VALID.split("[[expect]]")[0].replace("slow = false", "slow = false\nreport_only = true")
    r = run_case(expand(load_suite(write(tmp_path, text)), ["cpu"])[0])
    assert r.verdicts == [] and r.error is not None and r.status == "failed"


@pytest.fixture(scope="module")
def stopped_on_event(tmp_path_factory):
    """A run that stops 4 steps after the event low_loss and measures lambda_max every 2 steps
    from it: its result, and the step at which low_loss fired."""
    text = VALID.replace("steps = 60", 'steps = 500\nstop = { event = "low_loss", after = 4 }')
    text = text.replace("[measures.lambda_max]\nevery = 10", '[measures.lambda_max]\nevery = 2\nfrom_event = "low_loss"')
    text = text.replace("within = 60", "within = 500")
    s = load_suite(write(tmp_path_factory.mktemp("stop"), text))
    r = run_case(expand(s, ["cpu"])[0])
    loss = r.trajectories["loss"]
    fired = next(step for step, v in zip(loss["steps"], loss["values"]) if v <= 1e-3)
    return r, fired


def test_a_run_stops_on_an_event(stopped_on_event):
    r, fired = stopped_on_event
    assert r.last_step == fired + 4 and r.trajectories["loss"]["steps"][-1] == fired + 4


def test_a_measure_starts_from_an_event(stopped_on_event):
    r, fired = stopped_on_event
    assert r.trajectories["lambda_max"]["steps"] == [fired, fired + 2, fired + 4]


def test_a_run_stopped_on_an_event_is_judged_as_usual(stopped_on_event):
    r, _ = stopped_on_event
    assert r.status == "passed", [v.message for v in r.verdicts]


def test_sweep_expectation_over_groups(tmp_path):
    from harness import evaluate_sweeps
    from suite_text import SWEEP, VALID as V
    sweep = SWEEP.replace("BOUND", "-0.99")
    s = load_suite(write(tmp_path, V + sweep))
    results = [run_case(c) for c in expand(s, ["cpu"])]
    groups = evaluate_sweeps(s, results)
    assert sorted(groups) == ["across=lr-seed=0-cpu", "across=lr-seed=1-cpu"]
    for members, (v,) in groups.values():
        assert len(members) == 2 and v.passed and v.measured == pytest.approx(-1.0)
        assert set(v.per_case) == {m.case.id for m in members}
    wrong = load_suite(write(tmp_path, V + SWEEP.replace("BOUND", "-1.5"), "w.toml"))
    for _, (v,) in evaluate_sweeps(wrong, [run_case(c) for c in expand(wrong, ["cpu"])]).values():
        assert not v.passed and "outside" in v.message


def test_stop_at_a_predicted_event(tmp_path):
    text = VALID.replace("steps = 60", 'steps = 60\nstop = { event = "ten", after = 2 }') + """
[events.ten]
predict = "gd_edge"
args = { lr = 0.2 }
round = "floor"
"""
    s = load_suite(write(tmp_path, text.replace("within = 60", "within = 12")))
    r = run_case(expand(s, ["cpu"])[0])
    assert r.last_step == 12 and r.trajectories["loss"]["steps"][-1] == 12  # floor(2 / 0.2) + 2


HEAVY_BALL_PAST_ITS_EDGE = '''
schema = 1

[suite]
id = "test.heavy_ball_explodes"
claim = "Heavy ball far past its edge on the EoS MLP."
source = "issue 12"
devices = ["cpu"]
dtype = "float64"
slow = false

[problem]
kind = "mlp"
data = "gaussian_teacher"
n_samples = 256
input_dim = 20
n_outputs = 1
widths = [64, 64]
activation = "tanh"
loss = "mse"

[optimizer]
kind = "heavy_ball"
momentum = 0.9
lr = 0.6

[run]
steps = 300

[measures.loss]

[measures.lambda_max]
every = 20

[[expect]]
name = "hovers_at_edge"
measure = "lambda_max"
statistic = "median"
check = "le"
bound = 100.0
'''


def test_the_reported_heavy_ball_explosion_is_a_divergence(tmp_path):
    r = run_case(expand(load_suite(write(tmp_path, HEAVY_BALL_PAST_ITS_EDGE)))[0])
    assert r.error is None and r.diverged_at is not None and "exploding" in r.info["divergence"]
    assert 15 < r.diverged_at < 40  # L_0 = 0.54; L_20 = 1.3e8; L_30 = 1.8e21
    lam = r.trajectories["lambda_max"]
    assert lam["steps"][-1] == r.diverged_at and r.trajectories["loss"]["steps"][-1] == r.diverged_at
    (v,) = r.verdicts
    assert not v.passed and f"diverged at step {r.diverged_at}" in v.message


def test_the_reported_crash_without_the_explosion_bound_is_still_no_crash(tmp_path, monkeypatch):
    """Without the bound the run goes on to loss ~1e286 (step 240), where the Hessian's Lanczos
    tridiagonal used to fail in linalg.eigh; now that lambda_max is NaN and the run ends at the
    first non-finite loss."""
    import math

    import harness.run.runner as runner

    monkeypatch.setattr(runner, "EXPLOSION_FACTOR", math.inf)
    r = run_case(expand(load_suite(write(tmp_path, HEAVY_BALL_PAST_ITS_EDGE)))[0])
    assert r.error is None and r.info["divergence"] == "non-finite loss or parameters"
    assert 200 < r.diverged_at < 300
    lam = r.trajectories["lambda_max"]
    assert lam["steps"] == list(range(0, r.diverged_at, 20))
    assert math.isnan(lam["values"][-1]) and "overflow" in lam["aux"]["reason"][-1]  # step 240
    assert all(math.isfinite(v) for v in lam["values"][:-1])


def test_run_steps_are_bounded(tmp_path, capsys):
    from harness import SuiteError
    from harness.cli import main
    from harness.spec.reader import MAX_RUN_STEPS

    for steps in (MAX_RUN_STEPS + 1, 10 ** 12):
        path = write(tmp_path, VALID.replace("steps = 60", f"steps = {steps}"), f"s{steps}.toml")
        with pytest.raises(SuiteError) as err:
            load_suite(path)
        assert err.value.key == "run.steps" and f"{MAX_RUN_STEPS:,}" in err.value.message
        assert main(["run", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
        assert f"{path}: run.steps: at most {MAX_RUN_STEPS:,} steps" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))


def test_recorded_points_are_bounded_per_case(tmp_path):
    from harness import SuiteError
    from harness.spec.reader import MAX_RECORDED_POINTS, MAX_RUN_STEPS

    dense = VALID.replace("steps = 60", f"steps = {MAX_RUN_STEPS}").replace("within = 60", "within = 100")
    with pytest.raises(SuiteError) as err:  # loss every step: 1,000,001 points
        load_suite(write(tmp_path, dense))
    assert err.value.key == "measures" and "1,100,002 points" in err.value.message
    assert f"at most {MAX_RECORDED_POINTS:,}" in err.value.message and "measures.loss.every" in err.value.message
    # loss every 8 (125,001 points) and lambda_max every 10 (100,001): 225,002 <= 250,000
    sparse = load_suite(write(tmp_path, dense.replace("[measures.loss]\nevery = 1", "[measures.loss]\nevery = 8"), "ok.toml"))
    assert sparse.steps == MAX_RUN_STEPS


def test_recorded_points_counts_what_the_runner_records():
    import random

    from harness.spec.types import MeasureSpec
    from harness.spec.reader import recorded_points

    rng = random.Random(0)
    for _ in range(2000):
        steps, every = rng.randint(1, 200), rng.randint(1, 30)
        if rng.random() < 0.3:
            spec = MeasureSpec("m", "loss", None, every, from_event="e")
            fired = {"e": 0}  # the most an event-started measure can record: fired at step 0
        else:
            spec = MeasureSpec("m", "loss", None, every, rng.choice([0, rng.randint(0, 250)]), rng.randint(1, 30))
            fired = None
        assert recorded_points(spec, steps) == sum(spec.due(t, steps, fired) for t in range(steps + 1)), spec


# the measured gain of the last loss across lr against the predicted gain of 2/lr (a tolerance so wide
# that only its limits, the aggregated prediction, are checked)
EDGE_RATIO = """
[[sweep_expect]]
name = "edge_ratio"
measure = "loss"
statistic = "last"
across = "lr"
aggregate = "last_over_first"
check = "approx"
target = { predict = "gd_edge" }
rtol = 1e9
"""


def test_a_predicted_sweep_target_is_aggregated_like_the_measurement(tmp_path):
    """last_over_first of lambda_max's median against last_over_first of gd_edge = 2/lr per case:
    (2/0.2)/(2/0.1) = 0.5, not the first case's 2/lr = 20."""
    from harness import evaluate_sweeps
    from suite_text import VALID as V
    s = load_suite(write(tmp_path, V + EDGE_RATIO))
    results = [run_case(c) for c in expand(s, ["cpu"]) if c.seed == 0]
    (v,) = [v for _, verdicts in evaluate_sweeps(s, results).values() for v in verdicts if v.name == "edge_ratio"]
    assert v.limits[0] == pytest.approx(0.5 - 0.5e9) and v.limits[1] == pytest.approx(0.5 + 0.5e9)


def test_where_with_a_list_selects_the_cases_and_the_sweep_members(tmp_path):
    """``where = { lr = [0.1, 0.2] }`` over lr 0.1, 0.15, 0.2: the expectation runs on those two cases
    only, and the sweep aggregate over those two members: (2/0.2)/(2/0.1) = 0.5 (with lr 0.15 in the
    group it would still be 0.5 for last_over_first, so the members are checked by name too)."""
    from harness import evaluate_sweeps
    from suite_text import VALID as V
    text = V.replace("lr = [0.1, 0.2]", "lr = [0.1, 0.15, 0.2]").replace(
        'name = "loss_falls"', 'name = "loss_falls"\nwhere = { lr = [0.1, 0.2] }') + EDGE_RATIO.replace(
        'name = "edge_ratio"', 'name = "edge_ratio"\nwhere = { lr = [0.1, 0.2] }')
    s = load_suite(write(tmp_path, text))
    results = [run_case(c) for c in expand(s, ["cpu"]) if c.seed == 0]
    applied = {dict(r.case.point)["lr"]: "loss_falls" in [v.name for v in r.verdicts] for r in results}
    assert applied == {0.1: True, 0.15: False, 0.2: True}
    (v,) = [v for _, verdicts in evaluate_sweeps(s, results).values() for v in verdicts if v.name == "edge_ratio"]
    assert sorted(v.per_case) == sorted(r.case.id for r in results if dict(r.case.point)["lr"] != 0.15)
    assert v.limits[0] == pytest.approx(0.5 - 0.5e9)


def test_where_refuses_a_list_with_a_value_not_on_its_axis(tmp_path):
    from harness.errors import SuiteError
    from suite_text import VALID as V
    bad = V.replace('name = "loss_falls"', 'name = "loss_falls"\nwhere = { lr = [0.1, 0.3] }')
    with pytest.raises(SuiteError, match=r"where\.lr.*0\.3 is not among the axis"):
        load_suite(write(tmp_path, bad, "bad.toml"))
