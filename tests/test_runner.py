import pytest
import torch

from harness import expand, load_suite, run_case
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


def test_run_records_trajectories_and_verdicts(suite):
    r = run_case(expand(suite, ["cpu"])[0])
    assert r.status == "passed", [v.message for v in r.verdicts]
    lam = r.trajectories["lambda_max"]
    assert lam["steps"] == [0, 10, 20, 30, 40, 50, 60]
    assert lam["values"][0] == pytest.approx(4.0, rel=1e-8)  # the known top eigenvalue
    assert all(lam["aux"]["converged"])
    assert len(r.trajectories["loss"]["steps"]) == 61
    rec = r.record("run-x")
    assert rec["schema"] == "theory-harness/result/1" and rec["case"]["params"] == {"lr": 0.1}
    env = rec["environment"]
    for key in ("torch", "device_name", "dtype", "float32_matmul_precision", "cuda_matmul_allow_tf32", "git", "suite_sha256"):
        assert key in env


def test_a_diverging_run_is_a_failure_not_a_crash(tmp_path):
    s = load_suite(write(tmp_path, VALID.replace("lr = [0.1, 0.2]", "lr = 1000.0")))
    r = run_case(expand(s, ["cpu"])[0])
    assert r.status == "failed" and r.diverged_at is not None
    assert all(f"diverged at step {r.diverged_at}" in v.message for v in r.verdicts)
    assert r.trajectories["loss"]["steps"][-1] == r.diverged_at - 1  # nothing measured at a non-finite iterate


def test_cuda_case_without_a_gpu_is_skipped_with_a_reason(suite):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run_case(expand(suite, ["cuda"])[0])
    assert r.status == "skipped" and "CUDA" in r.skipped


def test_a_crash_inside_a_case_is_reported_as_its_failure(suite, monkeypatch):
    import harness.measures as measures

    def broken(self, ctx, memory):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(measures.LambdaMax, "__call__", broken)
    r = run_case(expand(suite, ["cpu"])[0])
    assert r.status == "failed" and "kernel exploded" in r.error
    assert all("kernel exploded" in v.message for v in r.verdicts)


def test_stop_on_event_and_measures_from_an_event(tmp_path):
    text = VALID.replace("steps = 60", 'steps = 500\nstop = { event = "low_loss", after = 4 }')
    text = text.replace("[measures.lambda_max]\nevery = 10", '[measures.lambda_max]\nevery = 2\nfrom_event = "low_loss"')
    text = text.replace("within = 60", "within = 500")
    s = load_suite(write(tmp_path, text))
    r = run_case(expand(s, ["cpu"])[0])
    loss = r.trajectories["loss"]
    fired = next(step for step, v in zip(loss["steps"], loss["values"]) if v <= 1e-3)
    assert r.last_step == fired + 4 and loss["steps"][-1] == fired + 4
    assert r.trajectories["lambda_max"]["steps"] == [fired, fired + 2, fired + 4]
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
