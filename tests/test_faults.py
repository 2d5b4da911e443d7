"""Planted faults: the EoS suite must turn red under each (issue 2's list and the note's).

Each fault is patched into the kernels or the update rule for one case of the shipped
suite (lr = 0.3, seed 0, CPU) and the case must fail. The nominal case is run too, so the
test shows the suite passes without the fault.
"""

import math
from pathlib import Path

import pytest

import harness.measures as measures
import harness.measures.curvature as curvature_measures
import harness.measures.matrix as matrix_measures
from harness import GD, expand, load_suite, run_case
from harness.kernels.operators import LinearOperator

SUITE = Path(__file__).parent.parent / "suites" / "eos_gd_mse.toml"


@pytest.fixture(scope="module")
def case():
    (c,) = [c for c in expand(load_suite(SUITE), ["cpu"]) if dict(c.point)["lr"] == 0.3 and c.seed == 0]
    return c


def _wrap_operator(monkeypatch, transform):
    real = curvature_measures.hessian_operator

    def faulty(obj, theta, strategy="double_backward_reused"):
        return transform(real, obj, theta, strategy)

    monkeypatch.setattr(curvature_measures, "hessian_operator", faulty)
    monkeypatch.setattr(measures, "hessian_operator", faulty)  # StepContext.hessian builds the step's operator


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


# --- SAM and Hessian-Jacobian suites (issue 3): the note's faults, plus two of our own ----------

from harness import SAM  # noqa: E402
from harness.predictions import PREDICTIONS  # noqa: E402
from harness.run.runner import evaluate_sweeps  # noqa: E402

SUITES = Path(__file__).parent.parent / "suites"


def _one(file, **point):
    s = load_suite(SUITES / file)
    cases = [c for c in expand(s, ["cpu"]) if c.seed == 0 and all(dict(c.point)[k] == v for k, v in point.items())]
    return s, cases


def _sam_step(kind):
    def step(self, theta, state, value_and_grad):
        _, g = value_and_grad(theta)
        if kind == "gd":
            return theta - self.lr * g, state
        if kind == "unnormalized":
            return theta - self.lr * value_and_grad(theta + self.rho * g)[1], state
        if kind == "wrong_sign":
            return theta - self.lr * value_and_grad(theta - self.rho * g / g.norm())[1], state
        raise ValueError(kind)
    return step


def sam_is_plain_gd(monkeypatch):
    monkeypatch.setattr(SAM, "step", _sam_step("gd"))


def sam_unnormalized_where_normalized(monkeypatch):
    monkeypatch.setattr(SAM, "step", _sam_step("unnormalized"))


def sam_perturbation_wrong_sign(monkeypatch):
    monkeypatch.setattr(SAM, "step", _sam_step("wrong_sign"))


def sam_edge_with_half_rho(monkeypatch):
    real = PREDICTIONS["sam_edge"]
    monkeypatch.setitem(PREDICTIONS._items, "sam_edge", lambda lr, rho, grad_norm: real(lr, rho / 2, grad_norm))


def jacobian_at_stale_parameters(monkeypatch):
    first = {}
    real = measures.JacobianNorm.quantity
    monkeypatch.setattr(measures.JacobianNorm, "quantity",
                        staticmethod(lambda model, theta, *a: real(model, first.setdefault("theta", theta), *a)))


def gauss_newton_normalised_twice(monkeypatch):
    real = curvature_measures.gauss_newton_operator

    def twice(obj, theta):
        op = real(obj, theta)
        return LinearOperator(lambda v: (op @ v) / obj.n, op.dim, op.dtype, op.device)
    monkeypatch.setattr(curvature_measures, "gauss_newton_operator", twice)


def chain_rule_with_rescaled_weight(monkeypatch):
    # ours: the first-layer weight used by the ansatz measures off by 0.1 % (e.g. a stale copy)
    import harness.kernels.ansatz as ansatz
    real = ansatz.first_layer

    def bad(model, theta):
        layer = real(model, theta)
        w = layer.weight
        return type(layer)(w * (1 + 1e-3), layer.bias, layer.rest)
    monkeypatch.setattr(ansatz, "first_layer", bad)


SUITE_FAULTS = [
    ("sam_edge_mlp.toml", {}, sam_is_plain_gd),
    ("sam_edge_mlp.toml", {}, sam_unnormalized_where_normalized),
    ("sam_edge_mlp.toml", {}, sam_perturbation_wrong_sign),
    ("sam_edge_mlp.toml", {}, sam_edge_with_half_rho),
    ("sam_quadratic_orbit.toml", {"rho": 0.02}, sam_is_plain_gd),
    ("sam_quadratic_orbit.toml", {"rho": 0.02}, sam_unnormalized_where_normalized),
    ("sam_quadratic_orbit.toml", {"rho": 0.02}, sam_perturbation_wrong_sign),
    ("sam_quadratic_orbit.toml", {"rho": 0.02}, sam_edge_with_half_rho),
    ("jacobian_ansatz.toml", {}, jacobian_at_stale_parameters),
    ("jacobian_ansatz.toml", {}, gauss_newton_normalised_twice),
    ("jacobian_ansatz.toml", {}, chain_rule_with_rescaled_weight),
    ("jacobian_flatness_sweep.toml", {}, jacobian_at_stale_parameters),
]


# --- deep matrix factorisation (issue 4): the note's faults ----------------------------------

from harness.kernels.losses import LOSSES  # noqa: E402
from harness.training.problems import DeepMatrixFactorization  # noqa: E402


def loss_without_its_half(monkeypatch):
    monkeypatch.setitem(LOSSES._items, "half_sse", lambda o, t: ((o - t) ** 2).sum())


def alpha_applied_to_the_product(monkeypatch):
    real = DeepMatrixFactorization.build

    def build(self, seed, dtype, device):
        import dataclasses
        return real(dataclasses.replace(self, alpha=self.alpha ** (1.0 / self.depth)), seed, dtype, device)
    monkeypatch.setattr(DeepMatrixFactorization, "build", build)


def stable_rank_in_place_of_effective_rank(monkeypatch):
    monkeypatch.setattr(matrix_measures, "effective_rank", lambda sv: float((sv ** 2).sum() / sv.max() ** 2))


# --- two-layer ReLU (issue 4): the note's faults ----------------------------------------------

from harness.training.optimizers import TwoRateGD  # noqa: E402
from harness.training.problems import TwoLayerReLU  # noqa: E402


def swapped_layer_rates(monkeypatch):
    real = TwoRateGD.rates
    monkeypatch.setattr(TwoRateGD, "rates", lambda self, problem: real(self, problem)[::-1])


def extra_inverse_sqrt_m_on_second_layer(monkeypatch):
    real = TwoLayerReLU.init

    def init(self, seed):
        theta = real(self, seed).clone()
        theta[self.m * self.d:] /= math.sqrt(self.m)
        return theta
    monkeypatch.setattr(TwoLayerReLU, "init", init)


# --- beyond the edge of stability (issue 4, first slice): the note's fault -----------------------

from harness.training.optimizers import ScaledSGD  # noqa: E402


def depthwise_scaling_removed(monkeypatch):
    real = ScaledSGD.direction
    monkeypatch.setattr(ScaledSGD, "direction", lambda self, theta, state: real(
        __import__("dataclasses").replace(self, depthwise_scaling=False), theta, state))


def adam_second_moment_without_bias_correction(monkeypatch):
    """P from the raw EMA v, not v / (1 - beta2^t): the measure, not Adam, is wrong."""
    import torch

    import harness.measures.curvature as curvature_measures

    def preconditioner(ctx):
        opt, g = ctx.state["optimizer"], ctx.state["optimizer"].param_groups[0]
        states = [opt.state.get(p, {}) for p in ctx.state["params"]]
        if any("exp_avg_sq" not in st for st in states):
            return torch.empty(0)
        return torch.cat([(st["exp_avg_sq"].sqrt() + g["eps"]).reshape(-1) for st in states]).to(ctx.theta.dtype)
    monkeypatch.setattr(curvature_measures, "_adam_preconditioner", preconditioner)


def sam_edge_with_next_iterate_grad_norm(monkeypatch):
    """Predictions bound to ||g|| of the next measurement (the next iterate where grad_norm is
    measured every step): equal at both points of SAM's 2-cycle, so only the approach shows it."""
    import numpy as np

    import harness.run.series as series_module
    real = series_module.series

    def shifted(trajectories, name):
        steps, values = real(trajectories, name)
        return (steps, np.concatenate([values[1:], values[-1:]])) if name == "grad_norm" else (steps, values)
    monkeypatch.setattr(series_module, "series", shifted)


def adam_edge_without_its_momentum_factor(monkeypatch):
    """(2 + 2 beta1)/eta, the heavy-ball edge, for Adam's EMA momentum: 1/(1 - beta1) = 10x too low."""
    monkeypatch.setitem(PREDICTIONS._items, "adam_edge", lambda lr, betas: (2 + 2 * betas[0]) / lr)


def rmsprop_preconditioner_without_its_square_root(monkeypatch):
    """RMSprop's P read as v + eps, not sqrt(v) + eps (the measure is wrong, not the optimiser)."""
    import torch

    def preconditioner(ctx):
        opt = ctx.state["optimizer"]
        states = [opt.state.get(p, {}) for p in ctx.state["params"]]
        if any("square_avg" not in st for st in states):
            return torch.empty(0)
        eps = opt.param_groups[0]["eps"]
        return torch.cat([(st["square_avg"] + eps).reshape(-1) for st in states]).to(ctx.theta.dtype)
    monkeypatch.setattr(curvature_measures, "_adam_preconditioner", preconditioner)


def heavy_ball_without_momentum(monkeypatch):
    """Heavy ball stepping as plain GD (the buffer dropped): its sharpness then sits at 2/eta,
    2/3 of the heavy-ball edge at beta = 0.5."""
    from harness.training.optimizers import HeavyBall
    monkeypatch.setattr(HeavyBall, "step", lambda self, theta, state, vg: (theta - self.lr * vg(theta)[1], state))


def nesterov_as_heavy_ball(monkeypatch):
    """Nesterov's look-ahead dropped (heavy ball's update): its edge is then (2 + 2 beta)/eta, 2x
    Nesterov's at beta = 0.5."""
    from harness.training.optimizers import HeavyBall, Nesterov
    monkeypatch.setattr(Nesterov, "step", HeavyBall.step)


# --- every suite fault, one test ---------------------------------------------------------------

SUITE_FAULTS += [
    ("dmf_identity.toml", {"depth": 3}, loss_without_its_half),
    ("dmf_identity.toml", {"depth": 3}, alpha_applied_to_the_product),
    ("dmf_identity.toml", {"depth": 3}, stable_rank_in_place_of_effective_rank),
    ("relu_wide_regime.toml", {"lr_second": 0.05}, swapped_layer_rates),
    ("relu_wide_regime.toml", {"lr_second": 0.05}, extra_inverse_sqrt_m_on_second_layer),
    ("beyond_eos_taylor.toml", {}, depthwise_scaling_removed),  # plain SGD at lr = 10 explodes
    ("adam_edge_mlp.toml", {"lr": 0.01}, adam_second_moment_without_bias_correction),
    ("adam_edge_mlp.toml", {"lr": 0.01}, adam_edge_without_its_momentum_factor),
    ("sam_quadratic_orbit.toml", {}, sam_edge_with_next_iterate_grad_norm),
    ("sam_edge_across_rho.toml", {"lr": 0.2, "rho": 0.005}, sam_edge_with_half_rho),  # the smallest rho: 0.917
    ("rmsprop_edge_mlp.toml", {"alpha": 0.999}, rmsprop_preconditioner_without_its_square_root),
    ("momentum_edge_mlp.toml", {"kind": "heavy_ball", "lr": 0.4}, heavy_ball_without_momentum),
    ("momentum_edge_mlp.toml", {"kind": "nesterov", "lr": 0.2}, nesterov_as_heavy_ball),
]


@pytest.mark.parametrize("file,point,fault", SUITE_FAULTS,
                         ids=[f"{f.split('.')[0]}-{fault.__name__}" for f, _, fault in SUITE_FAULTS])
def test_planted_fault_turns_its_suite_red(monkeypatch, file, point, fault):
    suite, cases = _one(file, **point)
    fault(monkeypatch)
    results = [run_case(c) for c in cases]
    failed = [v.name for r in results for v in r.verdicts if not v.passed]
    if len(cases) > 1:  # a sweep expectation over one case fails whatever the fault: not evidence
        failed += [v.name for _, verdicts in evaluate_sweeps(suite, results).values() for v in verdicts if not v.passed]
    assert failed, f"{fault.__name__} went unnoticed by {suite.id}"


# --- early stopping on a noisy matrix (issue 16, item 2): per-case verdicts of the depth-2 case ---
# (its sweep expectation needs the three depths, so a one-case run would fail it regardless)

def gd_step_ten_percent_long(monkeypatch):
    monkeypatch.setattr(GD, "step", _gd_step(scale=1.1))


def gd_step_ten_percent_short(monkeypatch):
    monkeypatch.setattr(GD, "step", _gd_step(scale=0.9))


def estimate_scored_against_the_noisy_matrix(monkeypatch):
    """The estimation error measured against (A + E)_r, the fitted matrix's rank-r part, not A_r."""
    monkeypatch.setattr(matrix_measures.EstimationError, "__call__", _scored_against_target)


def _scored_against_target(self, ctx, memory):
    if "a_r" not in memory:
        b = ctx.problem.target
        memory["a_r"] = matrix_measures.leading_part(b, self.rank)
        memory["scale"] = float((b - memory["a_r"]).norm())
    return measures.Measurement(float((ctx.problem.matrix(ctx.theta).detach() - memory["a_r"]).norm()) / memory["scale"])


EARLY_STOPPING_FAULTS = [None, gd_step_ten_percent_long, gd_step_ten_percent_short, estimate_scored_against_the_noisy_matrix]


@pytest.mark.parametrize("fault", EARLY_STOPPING_FAULTS, ids=lambda f: "nominal" if f is None else f.__name__)
def test_early_stopping_case_turns_red_under_each_fault(monkeypatch, fault):
    _, (case,) = _one("dmf_early_stopping.toml", depth=2)
    if fault is not None:
        fault(monkeypatch)
    failed = [v.name for v in run_case(case).verdicts if not v.passed]
    assert bool(failed) == (fault is not None), failed


# --- both layers trained (issue 16, item 3): the rank and ratio checks across lr_second ---------
# (two points of the sweep, 0 and 1.0, so that each sweep expectation is judged, not undefined)

def second_layer_rate_ignored(monkeypatch):
    """Only the first layer trains, whatever lr_second says (the predictions still bind it)."""
    real = TwoRateGD.rates
    monkeypatch.setattr(TwoRateGD, "rates", lambda self, problem: (real(self, problem)[0], 0.0))


def second_layer_rate_halved(monkeypatch):
    """The second layer trains at half its rate (the predictions still bind the full one)."""
    real = TwoRateGD.rates
    monkeypatch.setattr(TwoRateGD, "rates", lambda self, problem: (real(self, problem)[0], real(self, problem)[1] / 2))


@pytest.mark.parametrize("fault,caught_by", [
    (None, set()),
    (second_layer_rate_ignored, {"hitting_step_falls_with_the_second_layer_rate", "slope_steepens_with_the_second_layer_rate",
                                 "slope_steepens_by_the_predicted_factor"}),
    (second_layer_rate_halved, {"slope_steepens_by_the_predicted_factor"}),  # the ranks see direction only
], ids=["nominal", "second_layer_rate_ignored", "second_layer_rate_halved"])
def test_both_layers_sweep_turns_red_when_the_second_layer_rate_is_wrong(monkeypatch, fault, caught_by):
    suite = load_suite(SUITES / "relu_both_layers.toml")
    cases = [c for c in expand(suite, ["cpu"]) if c.seed == 0 and dict(c.point)["lr_second"] in (0.0, 1.0)]
    assert len(cases) == 2
    if fault is not None:
        fault(monkeypatch)
    results = [run_case(c) for c in cases]
    failed = {v.name for r in results for v in r.verdicts if not v.passed}
    failed |= {v.name for _, verdicts in evaluate_sweeps(suite, results).values() for v in verdicts if not v.passed}
    if fault is None:
        assert not failed, failed
    else:
        assert caught_by <= failed, failed
