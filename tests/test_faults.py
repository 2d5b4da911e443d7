"""Planted faults: the EoS suite must turn red under each (issue 2's list and the note's).

Each fault is patched into the kernels or the update rule for one case of the shipped
suite (lr = 0.3, seed 0, CPU) and the case must fail. The nominal case is run too, so the
test shows the suite passes without the fault.
"""

from pathlib import Path

import pytest

import harness.measures as measures
from harness import GD, expand, load_suite, run_case
from harness.operators import LinearOperator

SUITE = Path(__file__).parent.parent / "suites" / "eos_gd_mse.toml"


@pytest.fixture(scope="module")
def case():
    (c,) = [c for c in expand(load_suite(SUITE), ["cpu"]) if dict(c.point)["lr"] == 0.3 and c.seed == 0]
    return c


def _wrap_operator(monkeypatch, transform):
    real = measures.hessian_operator

    def faulty(obj, theta, strategy="double_backward_reused"):
        op = transform(real, obj, theta, strategy)
        return op

    monkeypatch.setattr(measures, "hessian_operator", faulty)


def flipped_hvp_sign(monkeypatch):
    def t(real, obj, theta, strategy):
        op = real(obj, theta, strategy)
        return LinearOperator(lambda v: -(op @ v), op.dim, op.dtype, op.device)
    _wrap_operator(monkeypatch, t)


def hvp_at_stale_parameters(monkeypatch):
    first = {}

    def t(real, obj, theta, strategy):
        return real(obj, first.setdefault("theta", theta), strategy)
    _wrap_operator(monkeypatch, t)


def hvp_of_sum_reduced_loss(monkeypatch):
    def t(real, obj, theta, strategy):
        op = real(obj, theta, strategy)
        return LinearOperator(lambda v: obj.n * (op @ v), op.dim, op.dtype, op.device)
    _wrap_operator(monkeypatch, t)


def _gd_step(scale=1.0, momentum=0.0):
    def step(self, theta, state, value_and_grad):
        _, g = value_and_grad(theta)
        buf = momentum * state + g if momentum else g
        return theta - scale * self.lr * buf, (buf if momentum else state)
    return step


def doubled_step(monkeypatch):
    monkeypatch.setattr(GD, "step", _gd_step(scale=2.0))


def halved_step(monkeypatch):
    monkeypatch.setattr(GD, "step", _gd_step(scale=0.5))


def momentum_in_gd(monkeypatch):
    monkeypatch.setattr(GD, "init", lambda self, theta: theta.new_zeros(theta.shape))
    monkeypatch.setattr(GD, "step", _gd_step(momentum=0.9))


FAULTS = [flipped_hvp_sign, hvp_at_stale_parameters, hvp_of_sum_reduced_loss, doubled_step, halved_step,
          momentum_in_gd]


def test_nominal_case_passes(case):
    r = run_case(case)
    assert r.passed, [v.message for v in r.verdicts if not v.passed]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.__name__ for f in FAULTS])
def test_planted_fault_turns_the_suite_red(case, monkeypatch, fault):
    fault(monkeypatch)
    r = run_case(case)
    failed = [v.name for v in r.verdicts if not v.passed]
    assert failed, f"{fault.__name__} went unnoticed"
