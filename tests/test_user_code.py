"""User code under a suite without editing the harness (issue 13): a ``module`` problem built
from a user's model, data and loss; ``torch_optim`` stepping a user's (or torch's) optimiser;
``"package.module:Name"`` wherever a suite names a kind, checked against harness.protocols;
plugins by ``--plugin``, the pytest ini option and the entry-point group; and the installable
example project under examples/."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import harness
from harness import PREDICTIONS, SuiteError, load_suite
from harness.cli import main
from harness.measures import StepContext
from harness.training.optimizers import HeavyBall, TorchOptim
from harness.training.problems import ModuleProblem
from harness.run.runner import expand, run_case

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "toy_user_pkg"
PKG = "thuser_pkg"  # the user package each test imports (written once per session, below)

USER_PACKAGE = {
    "__init__.py": "",
    "models.py": '''
        import torch
        from torch import nn

        class BNNet(nn.Module):
            """Conv + BatchNorm (running statistics as buffers) + a frozen projection + a head."""
            def __init__(self, channels=2, width=4, n_classes=3, size=4):
                super().__init__()
                self.conv = nn.Conv2d(channels, width, 3, padding=1)
                self.bn = nn.BatchNorm2d(width)
                with torch.no_grad():  # non-trivial running statistics, as after training
                    self.bn.running_mean.uniform_(-0.5, 0.5)
                    self.bn.running_var.uniform_(0.5, 2.0)
                self.frozen = nn.Parameter(torch.randn(width * size * size, 8) / 8, requires_grad=False)
                self.register_buffer("scale", torch.tensor(0.5, dtype=torch.float64))
                self.head = nn.Linear(8, n_classes)
            def forward(self, x):
                h = torch.tanh(self.bn(self.conv(x))).flatten(1) @ self.frozen
                return self.head(torch.tanh(h) * self.scale)

        def mlp(d=5, width=7, k=2):
            return nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, k))

        def not_a_module(**kw):
            return 3

        def on_gpu(d=5, k=2):
            return nn.Linear(d, k).cuda()
    ''',
    "data.py": '''
        import torch

        def images(n=12, channels=2, size=4, n_classes=3, seed=0):
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(n, channels, size, size, generator=g, dtype=torch.float64)
            return x, torch.arange(n) % n_classes

        def regression(n=10, d=5, k=2, n_test=0):
            x = torch.randn(n + n_test, d, dtype=torch.float64)   # global RNG: seeded by the harness
            y = torch.sin(x[:, :k])
            return (x[:n], y[:n], x[n:], y[n:]) if n_test else (x, y)

        def broken():
            return torch.zeros(3)

        def from_numpy(n=10, d=5, k=2):
            import numpy as np
            rng = np.random.default_rng(0)
            return rng.standard_normal((n, d)), rng.standard_normal((n, k)).astype(np.float32)
    ''',
    "losses.py": '''
        def half_mse(outputs, targets):
            return 0.5 * ((outputs - targets) ** 2).sum(dim=1).mean()

        def summed(outputs, targets):
            return 0.5 * ((outputs - targets) ** 2).sum()

        def broken(outputs, targets):
            raise RuntimeError("boom")
    ''',
    "optim.py": '''
        import torch

        class LongSGD(torch.optim.SGD):
            """SGD whose steps are 10 % too long: a subtle bug."""
            def __init__(self, params, lr=0.1, momentum=0.0):
                super().__init__(params, lr=1.1 * lr, momentum=momentum)

        class NoStep:
            def __init__(self, params, lr=0.1):
                pass
    ''',
    "kinds.py": '''
        from dataclasses import dataclass
        import torch
        from harness.measures import Measurement
        from harness.kernels.objective import Objective
        from harness.training.problems import Problem
        from harness.kernels.losses import mse

        @dataclass(frozen=True)
        class Diagonal:
            """1/2 sum_i lam_i w_i^2, a user's problem kind."""
            eigenvalues: list = None
            def build(self, seed, dtype, device):
                lam = torch.tensor(self.eigenvalues, dtype=torch.float64)
                x = (len(lam) ** 0.5) * torch.diag(lam.sqrt())
                obj = Objective(lambda w, inp: inp @ w.unsqueeze(-1), mse, x.to(device, dtype),
                                torch.zeros(len(lam), 1, dtype=dtype, device=device))
                return Problem(obj, torch.ones(len(lam), dtype=dtype, device=device))

        @dataclass(frozen=True)
        class Halving:
            """A user's update rule: theta <- theta - lr grad."""
            lr: float = 0.1
            def init(self, theta):
                return ()
            def step(self, theta, state, value_and_grad):
                return theta - self.lr * value_and_grad(theta)[1], state

        @dataclass(frozen=True)
        class ParamNorm:
            """A user's measure: ||theta_t||."""
            scale: float = 1.0
            def __call__(self, ctx, memory):
                return Measurement(self.scale * float(ctx.theta.norm()))

        def twice_edge(lr):
            """2 * (2 / lr)."""
            return 4.0 / lr

        def spread(values):
            return float(values.max() - values.min())

        @dataclass(frozen=True)
        class NotARule:
            lr: float = 0.1
            def init(self, theta):
                return ()

        class NotADataclass:
            def __call__(self, ctx, memory):
                return None

        def edge_with_varargs(*args):
            return 1.0
    ''',
    "plugin.py": '''
        from harness import PREDICTIONS

        @PREDICTIONS.register("thuser_quarter_edge")
        def thuser_quarter_edge(lr):
            """(1/2) * (2 / lr), registered by a plugin module."""
            return 1.0 / lr
    ''',
}


@pytest.fixture(scope="session")
def user_pkg(tmp_path_factory):
    """A package of someone else's code on sys.path: models, data, losses, optimisers, kinds."""
    base = tmp_path_factory.mktemp("user_site")
    pkg = base / PKG
    pkg.mkdir()
    for name, text in USER_PACKAGE.items():
        (pkg / name).write_text(textwrap.dedent(text))
    sys.path.insert(0, str(base))
    yield base
    sys.path.remove(str(base))


def _env(user_pkg) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(user_pkg), env.get("PYTHONPATH", "")])
    return env


HEAD = '''schema = 1
[suite]
id = "user.{id}"
claim = "user code under a suite"
source = "test"
devices = ["cpu"]
dtype = "float64"
seeds = [0]
slow = false
'''


def write_suite(tmp_path: Path, body: str, name: str = "s") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(HEAD.format(id=name) + textwrap.dedent(body))
    return path


QUADRATIC_THRESHOLD = '''
[problem]
kind = "quadratic"
eigenvalues = [4.0, 2.5, 1.0, 0.3]
[optimizer]
kind = "torch_optim"
class = "{cls}"
lr = 0.3
{extra}
[run]
steps = 2
[measures.stability_threshold]
every = 2
[[expect]]
name = "threshold_is_edge"
measure = "stability_threshold"
predict = "{predict}"
statistic = "first"
check = "approx"
rtol = 1e-6
'''


def run_suite(path: Path) -> list:
    return [run_case(c) for c in expand(load_suite(path))]


# --- the module problem ---------------------------------------------------------------------

def _bn_problem(user_pkg, **kw) -> ModuleProblem:
    opts = dict(model=f"{PKG}.models:BNNet", data=f"{PKG}.data:images", loss="cross_entropy")
    opts.update(kw)
    return ModuleProblem.from_table(opts, "f.toml", "problem")


@pytest.fixture
def bn_built(user_pkg):
    """The batch-norm module problem (a frozen parameter, buffers, integer labels) built in float32."""
    return _bn_problem(user_pkg).build(3, torch.float32, torch.device("cpu"))


def _trainable(module) -> list[str]:
    return [n for n, p in module.named_parameters() if p.requires_grad]


def test_module_problem_runs_the_module_in_eval_mode(bn_built):
    module = bn_built.module
    assert not module.training and not module.bn.training  # eval mode: running statistics, not batch ones


def test_module_problem_leaves_frozen_params_out_of_theta(bn_built):
    module = bn_built.module
    trainable = _trainable(module)
    assert "frozen" not in trainable and bn_built.theta0.numel() == sum(
        p.numel() for p in module.parameters() if p.requires_grad) == bn_built.n_params


def test_module_problem_groups_are_the_trainable_params(bn_built):
    assert set(bn_built.groups) == set(_trainable(bn_built.module))


def test_module_problem_casts_params_with_buffers_to_the_run_dtype(bn_built):
    module = bn_built.module
    assert bn_built.theta0.dtype == torch.float32 and module.frozen.dtype == torch.float32
    assert module.bn.running_mean.dtype == torch.float32 and module.scale.dtype == torch.float32


def test_module_problem_keeps_integer_labels(bn_built):
    obj = bn_built.objective
    assert obj.targets.dtype == torch.int64 and obj.inputs.dtype == torch.float32  # labels stay labels


def test_module_problem_objective_is_the_modules_forward_with_its_loss(bn_built):
    module, obj = bn_built.module, bn_built.objective
    with torch.no_grad():  # the objective is the module's own forward (eval mode) with its loss
        direct = torch.nn.functional.cross_entropy(module(obj.inputs), obj.targets)
    torch.testing.assert_close(obj.value(bn_built.theta0), direct, rtol=1e-6, atol=0)


def _bn_theta0(problem, seed, dtype=torch.float64):
    return problem.build(seed, dtype, torch.device("cpu")).theta0


def test_module_problem_leaves_the_callers_rng_alone(user_pkg):
    problem = _bn_problem(user_pkg)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    for seed in (0, 0, 1):
        _bn_theta0(problem, seed)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_module_problem_is_seeded(user_pkg):
    problem = _bn_problem(user_pkg)
    a, b, c = _bn_theta0(problem, 0), _bn_theta0(problem, 0), _bn_theta0(problem, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_module_problem_in_float32_starts_from_the_float64_initialisation(user_pkg):
    problem = _bn_problem(user_pkg)
    a = _bn_theta0(problem, 0)
    # float32 starts from the float64 initialisation, rounded
    d = _bn_theta0(problem, 0, torch.float32)
    torch.testing.assert_close(d, a.float(), rtol=0, atol=0)


@pytest.fixture
def clusters_built(user_pkg):
    """An mlp module problem on 30 Gaussian-cluster labels (3 classes) with an mse loss and 9 test points."""
    p = ModuleProblem.from_table({"model": f"{PKG}.models:mlp", "model_args": {"d": 5, "k": 3},
                                  "data": "gaussian_clusters", "data_args": {"input_dim": 5, "n_classes": 3,
                                                                             "n_samples": 30, "n_test": 9}},
                                 "f.toml", "problem")
    return p.build(0, torch.float64, torch.device("cpu"))


def test_module_problem_mse_on_labels_is_one_hot(clusters_built):
    y = clusters_built.objective.targets
    assert y.shape == (30, 3) and torch.equal(y.sum(1), torch.ones(30, dtype=torch.float64))


def test_module_problem_uses_the_test_set(clusters_built):
    assert clusters_built.test is not None and clusters_built.test.n == 9


def test_module_problem_data_is_seeded_by_data_seed(user_pkg):
    # the data function runs under fork_rng seeded with data_seed: reproducible, and data_seed matters
    q = ModuleProblem.from_table({"model": f"{PKG}.models:mlp", "data": f"{PKG}.data:regression",
                                  "data_seed": 4}, "f.toml", "problem")
    r = ModuleProblem.from_table({"model": f"{PKG}.models:mlp", "data": f"{PKG}.data:regression",
                                  "data_seed": 5}, "f.toml", "problem")
    x4 = q.build(0, torch.float64, torch.device("cpu")).objective.inputs
    assert torch.equal(x4, q.build(1, torch.float64, torch.device("cpu")).objective.inputs)
    assert not torch.equal(x4, r.build(0, torch.float64, torch.device("cpu")).objective.inputs)


def test_module_problem_converts_numpy_float32_data_to_the_run_dtype(user_pkg):
    p = ModuleProblem.from_table({"model": f"{PKG}.models:mlp", "data": f"{PKG}.data:from_numpy"}, "f", "problem")
    obj = p.build(0, torch.float64, torch.device("cpu")).objective
    assert obj.inputs.dtype == obj.targets.dtype == torch.float64 and obj.targets.shape == (10, 2)


def test_measures_work_unchanged_on_a_module_problem(user_pkg, tmp_path):
    """lambda_max against the dense Hessian, Gauss-Newton, grad norm, the Jacobian and ansatz measures."""
    path = write_suite(tmp_path, f'''
        [problem]
        kind = "module"
        model = "{PKG}.models:mlp"
        data = "{PKG}.data:regression"
        data_args = {{ n_test = 6 }}
        loss = "{PKG}.losses:half_mse"
        chunk_size = 4
        [optimizer]
        kind = "torch_optim"
        class = "torch.optim.SGD"
        lr = 0.05
        [run]
        steps = 3
        [measures.loss]
        [measures.grad_norm]
        [measures.test_loss]
        [measures.lambda_max]
        tol = 1e-10
        max_iter = 200
        [measures.lambda_gn]
        kind = "lambda_max"
        operator = "gauss_newton"
        tol = 1e-10
        max_iter = 200
        [measures.jacobian_norm]
        [measures.chain_rule_error]
        [measures.jacobian_trace_ratio]
        [measures.weights_moved]
        kind = "relative_change"
        group = "0.weight"
        [[expect]]
        name = "chain_rule_exact"
        measure = "chain_rule_error"
        statistic = "max"
        check = "le"
        bound = 1e-10
        ''')
    suite = load_suite(path)
    (case,) = expand(suite)
    result = run_case(case)
    assert result.error is None and result.passed, result.error
    traj = result.trajectories
    problem = suite.problem.build(0, torch.float64, torch.device("cpu"))
    theta0, obj = problem.theta0, problem.objective
    dense = torch.func.hessian(lambda t: sum(obj.chunk_loss(t, x, y, w) for x, y, w in obj.chunks()))(theta0)
    assert traj["lambda_max"]["values"][0] == pytest.approx(float(torch.linalg.eigvalsh(dense)[-1]), rel=1e-8)
    assert traj["grad_norm"]["values"][0] == pytest.approx(float(obj.value_and_grad(theta0)[1].norm()), rel=1e-12)
    assert 0 < traj["lambda_gn"]["values"][0] and 0 < traj["jacobian_norm"]["values"][0]
    assert traj["jacobian_trace_ratio"]["values"][0] <= 1 + 1e-12
    assert traj["test_loss"]["values"][0] > 0 and traj["weights_moved"]["values"][-1] > 0


def test_a_model_already_on_the_gpu_is_moved_to_the_case_device(user_pkg):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine")
    p = ModuleProblem.from_table({"model": f"{PKG}.models:on_gpu", "data": f"{PKG}.data:regression"},
                                 "f.toml", "problem")
    cpu = p.build(0, torch.float64, torch.device("cpu"))
    gpu = p.build(0, torch.float32, torch.device("cuda"))
    assert cpu.theta0.device.type == "cpu" and gpu.theta0.device.type == "cuda"
    assert gpu.objective.inputs.device.type == "cuda"


@pytest.mark.parametrize("key,value,message", [
    ("model", f"{PKG}.models:nope", "has no attribute 'nope'"),
    ("model", "not_installed_pkg.models:Net", "no module named 'not_installed_pkg'"),
    ("model", "mlp", "expected an import path 'package.module:Name'"),
    ("model", f"{PKG}.models:not_a_module", "must return an nn.Module, got a int"),
    ("data", f"{PKG}.data:images", "applied to one example (inputs (1, 2, 4, 4), torch.float64) raised RuntimeError"),
    ("data", f"{PKG}.data:broken", "must return (x, y) or (x, y, x_test, y_test)"),
    ("data", "gaussian_teachr", "unknown data set 'gaussian_teachr' (did you mean 'gaussian_teacher'?)"),
    ("loss", f"{PKG}.losses:summed", "must be the mean over the batch's examples"),
    ("loss", f"{PKG}.losses:broken", "raised RuntimeError: boom"),
    ("loss", f"{PKG}.kinds:Halving", "cannot be used as a loss: it is a class"),
])
def test_module_problem_errors_name_the_key(user_pkg, tmp_path, key, value, message):
    if "applied to one example" in message:
        key = "model"  # the MLP cannot take the images: its forward fails, and the key at fault is the model
        opts = {"model": f"{PKG}.models:mlp", "data": value, "loss": "mse"}
    else:
        opts = {"model": f"{PKG}.models:mlp", "data": f"{PKG}.data:regression", "loss": "mse", key: value}
    body = "[problem]\nkind = \"module\"\n" + "".join(f'{k} = "{v}"\n' for k, v in opts.items()) + '''
        [optimizer]
        kind = "gd"
        lr = 0.1
        [run]
        steps = 1
        [measures.loss]
        [[expect]]
        name = "x"
        measure = "loss"
        statistic = "first"
        check = "ge"
        bound = 0
        '''
    path = write_suite(tmp_path, textwrap.dedent(body))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert err.value.file == str(path) and err.value.key == f"problem.{key}"
    assert message in err.value.message


# --- torch_optim -------------------------------------------------------------------------------

def quadratic(lam):
    return lambda w: (0.5 * (lam * w * w).sum(), lam * w)


def test_torch_optim_sgd_momentum_is_heavy_ball_exactly():
    lam = torch.tensor([3.0, 1.0, 0.2], dtype=torch.float64)
    rule = TorchOptim.from_table({"class": "torch.optim.SGD", "lr": 0.1, "momentum": 0.9}, "f", "optimizer")
    ref = HeavyBall(lr=0.1, momentum=0.9)
    w = v = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    s, r = rule.init(w), ref.init(v)
    for _ in range(40):
        w, s = rule.step(w, s, quadratic(lam))
        v, r = ref.step(v, r, quadratic(lam))
    torch.testing.assert_close(w, v, rtol=1e-14, atol=1e-16)
    assert rule.lr == 0.1 and rule.momentum == 0.9


def test_torch_optim_steps_the_models_own_parameters_with_its_own_state(user_pkg):
    """Adam on the module problem: the same trajectory as a plain PyTorch training loop."""
    problem = _bn_problem(user_pkg).build(0, torch.float64, torch.device("cpu"))
    rule = TorchOptim.from_table({"class": "torch.optim.Adam", "lr": 0.01, "betas": [0.8, 0.9]}, "f",
                                 "optimizer")
    module = problem.module
    ref_module = _bn_problem(user_pkg).build(0, torch.float64, torch.device("cpu")).module
    ref = torch.optim.Adam([p for p in ref_module.parameters() if p.requires_grad], lr=0.01, betas=(0.8, 0.9))
    theta, state = problem.theta0, rule.init(problem.theta0, problem)
    x, y = problem.objective.inputs, problem.objective.targets
    for step in range(6):
        ctx = StepContext(step, theta, problem, rule, state)
        theta, state = rule.step(theta, state, ctx.value_and_grad)
        ref.zero_grad()
        torch.nn.functional.cross_entropy(ref_module(x), y).backward()
        ref.step()
    expected = torch.cat([p.detach().reshape(-1) for p in ref_module.parameters() if p.requires_grad])
    torch.testing.assert_close(theta, expected, rtol=1e-12, atol=1e-14)
    assert state["optimizer"].state[state["params"][0]]["step"] == 6  # its own moments, kept across steps
    assert state["params"][0] is dict(module.named_parameters())[problem.objective.model.names[0]]


@pytest.fixture
def torch_sgd_run(user_pkg, tmp_path, monkeypatch):
    """A module suite trained 5 steps by torch.optim.SGD with momentum, measuring the loss and the
    gradient norm, with every gradient evaluation counted: the suite, its result, the count."""
    from harness.kernels.objective import Objective
    calls = []
    original = Objective.value_and_grad
    monkeypatch.setattr(Objective, "value_and_grad", lambda self, t: calls.append(1) or original(self, t))
    path = write_suite(tmp_path, f'''
        [problem]
        kind = "module"
        model = "{PKG}.models:mlp"
        data = "{PKG}.data:regression"
        [optimizer]
        kind = "torch_optim"
        class = "torch.optim.SGD"
        lr = 0.1
        momentum = 0.5
        [run]
        steps = 5
        [measures.loss]
        [measures.grad_norm]
        [[expect]]
        name = "falls"
        measure = "loss"
        statistic = "last_over_first"
        check = "lt"
        bound = 1
        ''')
    suite = load_suite(path)
    (result,) = [run_case(c) for c in expand(suite)]
    return suite, result, calls


def test_a_module_suite_trained_by_a_torch_optimizer_passes(torch_sgd_run):
    _, result, _ = torch_sgd_run
    assert result.passed


def test_measures_share_the_gradient_of_the_update(torch_sgd_run):
    _, _, calls = torch_sgd_run
    assert len(calls) == 6  # one gradient per step (steps 0..5), shared by the update and both measures


def test_measures_see_theta_t_before_the_update(torch_sgd_run):
    suite, result, _ = torch_sgd_run
    problem = suite.problem.build(0, torch.float64, torch.device("cpu"))
    assert result.trajectories["loss"]["values"][0] == pytest.approx(float(problem.objective.value(problem.theta0)))


@pytest.fixture
def lbfgs_results(user_pkg, tmp_path):
    """A module suite trained 3 steps by torch.optim.LBFGS (a closure optimizer), lr swept over 0.5 and 1."""
    path = write_suite(tmp_path, f'''
        [problem]
        kind = "module"
        model = "{PKG}.models:mlp"
        data = "{PKG}.data:regression"
        [optimizer]
        kind = "torch_optim"
        class = "torch.optim:LBFGS"
        lr = [0.5, 1.0]
        max_iter = 4
        [run]
        steps = 3
        [measures.loss]
        [[expect]]
        name = "falls"
        measure = "loss"
        statistic = "last_over_first"
        check = "lt"
        bound = 0.9
        ''')
    return run_suite(path)


def test_a_torch_optimizers_lr_can_be_swept(lbfgs_results):
    assert [r.case.id for r in lbfgs_results] == ["lr=0.5-seed=0-cpu", "lr=1-seed=0-cpu"]


def test_a_closure_optimizer_trains(lbfgs_results):
    assert all(r.passed for r in lbfgs_results), [r.error for r in lbfgs_results]


@pytest.mark.parametrize("cls,extra,predict", [
    ("torch.optim.SGD", "", "gd_edge"),
    ("torch.optim.SGD", "momentum = [0.5, 0.9]", "heavy_ball_edge"),
    ("torch.optim.SGD", "momentum = 0.9\nnesterov = true", "nesterov_edge"),
])
def test_stability_threshold_of_torch_sgd_meets_its_edge_exactly(tmp_path, cls, extra, predict):
    results = run_suite(write_suite(tmp_path, QUADRATIC_THRESHOLD.format(cls=cls, extra=extra, predict=predict)))
    assert len(results) == (2 if "[" in extra else 1)
    for r in results:
        assert r.passed, (r.case.id, r.error, [v.measured for v in r.verdicts])
        assert abs(r.verdicts[0].measured - 1) < 1e-6


def test_a_user_sgd_with_steps_10_percent_long_fails_gd_edge(user_pkg, tmp_path, capsys):
    path = write_suite(tmp_path, QUADRATIC_THRESHOLD.format(cls=f"{PKG}.optim:LongSGD", extra="", predict="gd_edge"))
    assert main(["run", str(path), "--device", "cpu", "--out", str(tmp_path / "out")]) == 1
    assert "FAIL" in capsys.readouterr().out
    (record,) = [json.loads(f.read_text()) for f in (tmp_path / "out").glob("*/user.s/*.json")]
    (verdict,) = record["expectations"]
    assert not verdict["passed"] and verdict["measured"] == pytest.approx(1 / 1.1, rel=1e-6)


@pytest.mark.parametrize("table,key,message", [
    ({"lr": 0.1}, "optimizer.class", "missing; expected the optimiser's class"),
    ({"class": "torch.optim.SDG", "lr": 0.1}, "optimizer.class", "'torch.optim' has no attribute 'SDG'"),
    ({"class": "torch.optim.SGD", "lrr": 0.1}, "optimizer.lrr", "unknown key (did you mean 'lr'?)"),
    ({"class": "torch.optim.SGD", "lr": -0.1}, "optimizer.lr", "expected a finite step size lr > 0, got -0.1"),
    ({"class": f"{PKG}.optim:NoStep", "lr": 0.1}, "optimizer.class", "lacks a method step()"),
])
def test_torch_optim_errors_name_the_key(user_pkg, table, key, message):
    with pytest.raises(SuiteError) as err:
        TorchOptim.from_table(table, "f.toml", "optimizer")
    assert err.value.key == key and message in err.value.message


# --- import paths and protocols ------------------------------------------------------------------

def test_every_kind_by_import_path(user_pkg, tmp_path):
    path = write_suite(tmp_path, f'''
        [problem]
        kind = "{PKG}.kinds:Diagonal"
        eigenvalues = [3.0, 1.0]
        [optimizer]
        kind = "{PKG}.kinds:Halving"
        lr = 0.4
        [run]
        steps = 20
        [measures.norm]
        kind = "{PKG}.kinds:ParamNorm"
        scale = 2.0
        [measures.stability_threshold]
        every = 20
        [[expect]]
        name = "edge_by_path"
        measure = "stability_threshold"
        predict = "{PKG}.kinds:twice_edge"
        statistic = "first"
        check = "approx"
        target = 0.5
        rtol = 1e-6
        [[expect]]
        name = "statistic_by_path"
        measure = "norm"
        statistic = "{PKG}.kinds:spread"
        check = "gt"
        bound = 0.5
        ''')
    (result,) = run_suite(path)
    assert result.passed, (result.error, [(v.name, v.measured, v.message) for v in result.verdicts])
    assert result.trajectories["norm"]["values"][0] == pytest.approx(2 * math.sqrt(2))


SIMPLE = '''
[problem]
kind = "{problem}"
eigenvalues = [1.0]
[optimizer]
kind = "{optimizer}"
lr = 0.1
[run]
steps = 2
[measures.m]
kind = "{measure}"
[[expect]]
name = "x"
measure = "m"
predict = "{predict}"
statistic = "{statistic}"
check = "ge"
bound = 0
'''
GOOD = dict(problem="quadratic", optimizer="gd", measure="loss", predict="gd_edge", statistic="median")


@pytest.mark.parametrize("field,value,key,message", [
    ("problem", f"{PKG}.kinds:NotADataclass", "problem.kind", "cannot be used as a problem: it is not a dataclass"),
    ("problem", f"{PKG}.models:BNNet", "problem.kind", 'use [problem] kind = "module"'),
    ("optimizer", f"{PKG}.kinds:NotARule", "optimizer.kind", "cannot be used as an optimizer: it lacks a method step()"),
    ("optimizer", "torch.optim:SGD", "optimizer.kind", 'use [optimizer] kind = "torch_optim"'),
    ("optimizer", f"{PKG}.kinds:Nope", "optimizer.kind", f"'{PKG}.kinds' has no attribute 'Nope'"),
    ("measure", f"{PKG}.kinds:NotADataclass", "measures.m.kind", "cannot be used as a measure: it is not a dataclass"),
    ("predict", f"{PKG}.kinds:edge_with_varargs", "expect[0].predict", "cannot be used as a prediction: it has *args"),
    ("predict", "no_such_pkg.x:edge", "expect[0].predict", "cannot import module 'no_such_pkg.x'"),
    ("statistic", f"{PKG}.kinds:Halving", "expect[0].statistic", "cannot be used as a statistic: it is a class"),
])
def test_protocol_errors_exit_2_naming_the_key_path_with_what_is_missing(user_pkg, tmp_path, capsys, field, value,
                                                                         key, message):
    path = write_suite(tmp_path, SIMPLE.format(**{**GOOD, field: value}))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert err.value.key == key and message in err.value.message, str(err.value)
    assert main(["run", str(path), "--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    stderr = capsys.readouterr().err
    assert f"{path}: {key}: " in stderr and message in stderr and "Traceback" not in stderr


def test_a_good_simple_suite_loads(tmp_path):
    load_suite(write_suite(tmp_path, SIMPLE.format(**GOOD)))  # the baseline the error cases break


def test_protocols_are_exported():
    assert "protocols" in harness.__all__ and harness.protocols.lacks("optimizer", harness.GD) == ""
    for name in ("ProblemKind", "UpdateRule", "TorchOptimizer", "Measure", "Prediction", "WindowStatistic",
                 "ModelFactory", "DataSet", "Loss"):
        assert getattr(harness.protocols, name).__doc__


# --- plugins ---------------------------------------------------------------------------------------

PLUGIN_SUITE = '''
[problem]
kind = "quadratic"
eigenvalues = [1.0, 0.5]
[optimizer]
kind = "gd"
lr = 0.4
[run]
steps = 2
[measures.stability_threshold]
every = 2
[[expect]]
name = "quarter"
measure = "stability_threshold"
predict = "thuser_quarter_edge"
statistic = "first"
check = "approx"
target = 2.0
rtol = 1e-6
'''


def test_cli_plugin_option_loads_a_module_first(user_pkg, tmp_path):
    path = write_suite(tmp_path, PLUGIN_SUITE)
    cmd = [sys.executable, "-m", "harness", "run", str(path), "--device", "cpu", "--out", str(tmp_path / "o")]
    without = subprocess.run(cmd, capture_output=True, text=True, env=_env(user_pkg))
    assert without.returncode == 2 and "unknown prediction 'thuser_quarter_edge'" in without.stderr
    with_plugin = subprocess.run(cmd + ["--plugin", f"{PKG}.plugin"], capture_output=True, text=True,
                                 env=_env(user_pkg))
    assert with_plugin.returncode == 0, with_plugin.stdout + with_plugin.stderr



def test_cli_plugin_that_cannot_be_imported_exits_2(tmp_path, capsys):
    path = write_suite(tmp_path, PLUGIN_SUITE)
    assert main(["run", str(path), "--device", "cpu", "--out", str(tmp_path / "o"), "--plugin", "no_such_plugin_mod"]) == 2
    err = capsys.readouterr().err
    assert "plugin 'no_such_plugin_mod': cannot import module 'no_such_plugin_mod'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_pytest_ini_option_loads_plugins(user_pkg, pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", _env(user_pkg)["PYTHONPATH"])
    pytester.makefile(".toml", **{"suites/plugged": HEAD.format(id="plugged") + PLUGIN_SUITE})
    pytester.makeini(f"[pytest]\nharness_suite_dirs = suites\nharness_plugins = {PKG}.plugin\n")
    result = pytester.runpytest_subprocess("--harness-out", "", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nharness_suite_dirs = suites\nharness_plugins = no_such_plugin_mod\n")
    result = pytester.runpytest_subprocess("--harness-out", "", "-p", "no:cacheprovider")
    assert result.ret != 0 and "no_such_plugin_mod" in result.stderr.str() + result.stdout.str()


def _example_installed() -> None:
    try:
        import toy_user_pkg  # noqa: F401
    except ImportError:
        pytest.fail("the example project is not installed: pip install -e examples/toy_user_pkg")


def test_entry_point_plugins_register_their_kinds():
    _example_installed()
    from importlib.metadata import entry_points
    assert any(ep.value == "toy_user_pkg.theory" for ep in entry_points(group="theory_harness.plugins"))
    assert "normalized_gd_edge" in PREDICTIONS  # a miss loads the entry points, then finds it
    assert PREDICTIONS["normalized_gd_edge"](lr=0.1, grad_norm=0.3) == pytest.approx(6.0)


def test_normalized_gd_edge_is_exact_on_the_two_cycle_of_a_quadratic():
    """The example's prediction, checked where it is exact: on 1/2 lam x^2 normalised GD (the
    example's own optimiser, through torch_optim) started at x = lr/2 flips between +-lr/2, where
    2 |g| / lr = lam."""
    _example_installed()
    lam, lr = 3.7, 0.05
    rule = TorchOptim.from_table({"class": "toy_user_pkg.optim:NormalizedGD", "lr": lr}, "f", "optimizer")
    lam_t = torch.tensor([lam], dtype=torch.float64)
    x = torch.tensor([lr / 2], dtype=torch.float64)
    state = rule.init(x)
    for _ in range(7):
        x, state = rule.step(x, state, quadratic(lam_t))
        assert abs(float(x)) == pytest.approx(lr / 2, rel=1e-12)
        assert PREDICTIONS["normalized_gd_edge"](lr=lr, grad_norm=lam * abs(float(x))) == pytest.approx(lam, rel=1e-12)


# --- the example project (someone else's package, installed next to the harness) ----------------

@pytest.mark.slow
def test_example_suites_pass_through_the_cli(tmp_path):
    """The user's own model and data (cnn_sgd_edge) and the exact suite
    through ``theory-harness run``; every example suite also runs as a pytest item in CI (testpaths),
    so the CLI runs two of them, not the folder twice over."""
    _example_installed()
    files = [str(EXAMPLE / "suites" / f) for f in ("cnn_sgd_edge.toml", "sgd_threshold.toml")]
    proc = subprocess.run([sys.executable, "-m", "harness", "run", *files, "--device", "cpu",
                           "--threads", "1", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(next((tmp_path / "out").glob("*/summary.json")).read_text())
    assert {c["suite"] for c in summary["cases"]} == {"toy_user_pkg.cnn_sgd_edge", "toy_user_pkg.sgd_threshold"}
    assert all(c["status"] == "passed" for c in summary["cases"])


def _pytest_on_the_example_suites(cwd, *args):
    """``pytest path/to/suites`` run from ``cwd``, elsewhere than the repository."""
    base = [sys.executable, "-m", "pytest", str(EXAMPLE / "suites"), "-p", "no:cacheprovider", "--harness-out", "",
            "--device", "cpu"]
    return subprocess.run(base + list(args), capture_output=True, text=True, cwd=cwd)


def test_example_suites_are_collected_by_pytest_from_another_folder(tmp_path):
    """``pytest path/to/suites`` from elsewhere: every suite of the folder is collected (the CNN suites
    run in CI's own ``pytest examples/toy_user_pkg/suites`` and in the CLI test above)."""
    _example_installed()
    listed = _pytest_on_the_example_suites(tmp_path, "--collect-only", "-q")
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    for suite in ("cnn_sgd_edge", "cnn_momentum_edge", "cnn_normalized_gd_edge", "sgd_threshold"):
        assert f"{suite}.toml::seed=0-cpu" in listed.stdout or f"{suite}.toml::momentum=0-seed=0-cpu" in listed.stdout


def test_an_example_suite_runs_under_pytest_from_another_folder(tmp_path):
    """The exact one of the example suites runs, to keep this test to seconds."""
    _example_installed()
    proc = _pytest_on_the_example_suites(tmp_path, "-q", "-k", "sgd_threshold")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 passed" in proc.stdout


def test_the_wrong_optimizer_turns_an_example_suite_red(user_pkg, tmp_path):
    """The example's exact suite with torch.optim.SGD swapped for a user SGD whose steps are 10 % long."""
    _example_installed()
    text = (EXAMPLE / "suites" / "sgd_threshold.toml").read_text()
    assert 'class = "torch.optim.SGD"' in text
    bad = tmp_path / "sgd_threshold.toml"
    bad.write_text(text.replace('class = "torch.optim.SGD"', f'class = "{PKG}.optim:LongSGD"'))
    good = [run_case(c) for c in expand(load_suite(EXAMPLE / "suites" / "sgd_threshold.toml"), ["cpu"])]
    broken = [run_case(c) for c in expand(load_suite(bad), ["cpu"])]
    assert good and all(r.passed for r in good)
    assert broken and not any(r.passed for r in broken)


# --- review: what a user plugging in a real training codebase meets --------------------------------

REVIEW_PKG = "threview_pkg"
REVIEW_PACKAGE = {
    "__init__.py": "",
    "models.py": """
        import torch
        from torch import nn

        def frozen_first(d=5, width=6, k=2, freeze=True):
            net = nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, k))
            net[0].requires_grad_(not freeze)
            return net

        class TokenBag(nn.Module):
            def __init__(self, vocab=7, dim=3, k=2):
                super().__init__()
                self.emb = nn.Embedding(vocab, dim)
                self.emb.weight.requires_grad_(False)
                self.head = nn.Linear(dim, k)
            def forward(self, tokens):
                return self.head(self.emb(tokens).mean(1))

        class Tupled(nn.Module):
            def __init__(self, d=5, k=2):
                super().__init__()
                self.body = nn.Linear(d, 4)
                self.head = nn.Linear(4, k)
            def forward(self, x):
                h = torch.tanh(self.body(x))
                return self.head(h), h

        class Dicted(Tupled):
            def forward(self, x):
                logits, h = super().forward(x)
                return {"logits": logits, "features": h}

        def linear(d=4):
            return nn.Linear(d, 1)

        def lazy(k=2):
            return nn.Sequential(nn.LazyLinear(4), nn.LazyBatchNorm1d(), nn.Tanh(), nn.LazyLinear(k))

        class NoEval(nn.Linear):
            def __init__(self, d=5, k=2):
                super().__init__(d, k)
            def train(self, mode=True):
                raise RuntimeError("this model has no eval mode")

        class AlwaysDropout(nn.Module):
            def __init__(self, d=5, k=2):
                super().__init__()
                self.fc = nn.Linear(d, k)
            def forward(self, x):
                return self.fc(nn.functional.dropout(x, 0.5, training=True))
    """,
    "data.py": """
        import numpy as np
        import torch

        def tokens(n=12, vocab=7, length=4, k=2):
            x = torch.randint(0, vocab, (n, length))
            return x, x[:, 0] % k

        def regression(n=10, d=5, k=2):
            x = torch.randn(n, d, dtype=torch.float64)
            return x, torch.sin(x[:, :k])

        def split(n=10, d=5, k=2, n_test=0, none=False):
            x = torch.randn(n + n_test, d, dtype=torch.float64)
            y = torch.sin(x[:, :k])
            return (x[:n], y[:n], None, None) if none else (x[:n], y[:n], x[n:], y[n:])

        def scalar_target(n=10, d=5):
            return torch.randn(n, d), torch.tensor(3.0)

        def labels_int32(n=12, d=5, k=2):
            rng = np.random.default_rng(0)
            return rng.standard_normal((n, d)), (np.arange(n) % k).astype(np.int32)
    """,
    "optim.py": """
        import torch

        class SAM(torch.optim.Optimizer):
            # davda54/sam's pattern: perturb along g/||g||, zero the grads, call the closure at the
            # perturbed point, step back and descend along the perturbed gradient
            def __init__(self, params, lr=0.1, rho=0.05):
                super().__init__(params, dict(lr=lr, rho=rho))

            @torch.no_grad()
            def step(self, closure=None):
                closure = torch.enable_grad()(closure)
                ps = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
                norm = torch.norm(torch.stack([p.grad.norm() for p in ps]))
                for group in self.param_groups:
                    for p in group["params"]:
                        e = p.grad * (group["rho"] / (norm + 1e-12))
                        p.add_(e)
                        self.state[p]["e"] = e
                self.zero_grad()
                closure()
                for group in self.param_groups:
                    for p in group["params"]:
                        p.sub_(self.state[p]["e"])
                        p.add_(p.grad, alpha=-group["lr"])

        class Unchecked(torch.optim.Optimizer):
            # a user's GD that checks none of its arguments
            def __init__(self, params, lr=0.1, momentum=0.0):
                super().__init__(params, dict(lr=lr, momentum=momentum))

            @torch.no_grad()
            def step(self):
                for group in self.param_groups:
                    for p in group["params"]:
                        p.add_(p.grad, alpha=-group["lr"])
    """,
}


@pytest.fixture(scope="session")
def review_pkg(tmp_path_factory):
    base = tmp_path_factory.mktemp("review_site")
    pkg = base / REVIEW_PKG
    pkg.mkdir()
    for name, text in REVIEW_PACKAGE.items():
        (pkg / name).write_text(textwrap.dedent(text))
    sys.path.insert(0, str(base))
    yield base
    sys.path.remove(str(base))


def _review_problem(**opts) -> ModuleProblem:
    table = {"data": "data:regression", "loss": "mse", **opts}
    for key in ("model", "data", "loss"):
        if ":" in table[key]:
            table[key] = f"{REVIEW_PKG}.{table[key]}"
    return ModuleProblem.from_table(table, "f.toml", "problem")


def test_ansatz_measures_on_a_model_whose_first_layer_is_frozen(review_pkg):
    """A frozen first nn.Linear is not in theta: the Hessian-Jacobian measures read it from the
    module (they raised KeyError '0.weight'), and give what they give with it trainable."""
    from harness.kernels.ansatz import chain_rule_error, trace_inequality_ratio

    cpu = torch.device("cpu")
    frozen = _review_problem(model="models:frozen_first").build(0, torch.float64, cpu)
    free = _review_problem(model="models:frozen_first", model_args={"freeze": False}).build(0, torch.float64, cpu)
    assert frozen.theta0.numel() == free.theta0.numel() - (5 * 6 + 6)
    for fn in (chain_rule_error, trace_inequality_ratio):
        a = fn(frozen.objective.model, frozen.theta0, frozen.objective.inputs)
        b = fn(free.objective.model, free.theta0, free.objective.inputs)
        assert math.isfinite(a) and a == pytest.approx(b, rel=1e-12, abs=1e-15)
    assert 0 < trace_inequality_ratio(frozen.objective.model, frozen.theta0, frozen.objective.inputs) <= 1


def test_jacobian_measures_on_integer_inputs_are_bad_input(review_pkg, tmp_path, capsys):
    """Token ids have no input derivative: exit 2 naming the measure (was a crashed case, exit 1)."""
    path = write_suite(tmp_path, f"""
        [problem]
        kind = "module"
        model = "{REVIEW_PKG}.models:TokenBag"
        data = "{REVIEW_PKG}.data:tokens"
        loss = "cross_entropy"
        [optimizer]
        kind = "torch_optim"
        class = "torch.optim.SGD"
        lr = 0.1
        [run]
        steps = 2
        [measures.lambda_max]
        [measures.jac]
        kind = "jacobian_norm"
        [[expect]]
        name = "x"
        measure = "lambda_max"
        statistic = "first"
        check = "gt"
        bound = 0
        """)
    assert main(["run", str(path), "--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: measures.jac: input-output Jacobians need floating-point inputs" in err and "Traceback" not in err


def test_output_picks_the_tensor_of_a_forward_that_returns_a_tuple_or_dict(review_pkg):
    for model, output in (("models:Tupled", 0), ("models:Dicted", "logits")):
        with pytest.raises(SuiteError) as err:  # without output: refused, saying what to write
            _review_problem(model=model)
        assert err.value.key == "problem.model" and f"output = {output!r}" in err.value.message
        built = _review_problem(model=model, output=output).build(0, torch.float64, torch.device("cpu"))
        module, obj = built.module, built.objective
        with torch.no_grad():
            head = module(obj.inputs)[output]
        assert head.shape == obj.targets.shape
        torch.testing.assert_close(obj.value(built.theta0), 0.5 * ((head - obj.targets) ** 2).sum(1).mean())
        _, g = obj.value_and_grad(built.theta0)
        assert torch.isfinite(g).all() and g.norm() > 0
    with pytest.raises(SuiteError) as err:
        _review_problem(model="models:Dicted", output="logit")
    assert err.value.key == "problem.output" and "did you mean 'logits'" in err.value.message
    with pytest.raises(SuiteError) as err:
        _review_problem(model="models:Tupled", output=2)
    assert err.value.key == "problem.output"


def test_a_forward_that_is_random_in_eval_mode_is_refused(review_pkg):
    with pytest.raises(SuiteError) as err:
        _review_problem(model="models:AlwaysDropout")
    assert err.value.key == "problem.model" and "different outputs on the same" in err.value.message


def test_integer_labels_of_any_width_are_int64_class_labels(review_pkg):
    built = _review_problem(model="models:Tupled", output=0, data="data:labels_int32", loss="cross_entropy").build(
        0, torch.float32, torch.device("cpu"))
    assert built.objective.targets.dtype == torch.int64 and built.objective.inputs.dtype == torch.float32
    assert math.isfinite(float(built.objective.value(built.theta0)))


def test_cross_entropy_on_regression_targets_is_refused(review_pkg):
    with pytest.raises(SuiteError) as err:
        _review_problem(model="models:Tupled", output=0, loss="cross_entropy")
    assert err.value.key == "problem.loss" and "floating targets" in err.value.message


@pytest.mark.parametrize("table,key,message", [
    ({"lr": -0.1}, "optimizer.lr", "expected a finite step size lr > 0, got -0.1"),
    ({"lr": 0.0}, "optimizer.lr", "expected a finite step size lr > 0"),
    ({"lr": "0.1"}, "optimizer.lr", "expected a finite step size lr > 0"),
    ({"lr": 0.1, "momentum": 1.5}, "optimizer.momentum", "expected a finite momentum in [0, 1)"),
    ({"class": "torch.optim.SGD", "lr": 0.1, "nesterov": True}, "optimizer.nesterov", "Nesterov momentum requires"),
    ({"class": "torch.optim.Adam", "lr": 0.1, "betas": 0.9}, "optimizer.betas", "betas = [[0.9, 0.999]]"),
])
def test_torch_optim_constructor_errors_name_the_key(review_pkg, table, key, message):
    """lr and momentum are checked whatever the class checks (Unchecked took lr = -0.1 and ran);
    a constructor that raises is blamed on the key that makes it raise alone."""
    table = {"class": f"{REVIEW_PKG}.optim:Unchecked", **table}
    with pytest.raises(SuiteError) as err:
        TorchOptim.from_table(table, "f.toml", "optimizer")
    assert err.value.key == key and message in err.value.message, str(err.value)


def test_a_sam_style_optimizer_gets_the_gradient_where_it_calls_the_closure(review_pkg):
    """An optimiser that moves the parameters, zeroes .grad and then calls the closure (davda54/sam)
    gets the loss and gradient there (it got theta_t's loss and no gradient: no step at all)."""
    from harness.training.optimizers import SAM

    lam = torch.tensor([3.0, 1.0, 0.2], dtype=torch.float64)
    rule = TorchOptim.from_table({"class": f"{REVIEW_PKG}.optim:SAM", "lr": 0.1, "rho": 0.05}, "f", "optimizer")
    ref = SAM(lr=0.1, rho=0.05, eps=1e-12)
    w = v = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    s, r = rule.init(w), ref.init(v)
    for _ in range(20):
        w, s = rule.step(w, s, quadratic(lam))
        v, r = ref.step(v, r, quadratic(lam))
    torch.testing.assert_close(w, v, rtol=1e-12, atol=1e-14)


def test_stability_threshold_probes_do_not_disturb_a_torch_optim_run(review_pkg, tmp_path):
    """A model with exactly as many parameters as the threshold's probe grid has points: the probes
    stepped the module's own parameters, and the run went on from the probes' last point (it
    diverged at step 1 with the default 1001 points and a 1001-parameter model)."""
    body = f"""
        [problem]
        kind = "module"
        model = "{REVIEW_PKG}.models:linear"
        model_args = {{ d = 4 }}
        data = "{REVIEW_PKG}.data:regression"
        data_args = {{ d = 4, k = 1 }}
        [optimizer]
        kind = "torch_optim"
        class = "torch.optim.SGD"
        lr = 0.3
        momentum = 0.5
        [run]
        steps = 6
        [measures.loss]
        THRESHOLD
        [[expect]]
        name = "x"
        measure = "loss"
        statistic = "first"
        check = "gt"
        bound = 0
        """
    probe = "[measures.stability_threshold]\n        points = 5\n        steps = 40\n        rounds = 1"
    with_probe = run_suite(write_suite(tmp_path, body.replace("THRESHOLD", probe), "probe"))[0]
    without = run_suite(write_suite(tmp_path, body.replace("THRESHOLD", ""), "plain"))[0]
    assert with_probe.error is None and with_probe.diverged_at is None
    assert with_probe.trajectories["loss"]["values"] == without.trajectories["loss"]["values"]
    assert len(without.trajectories["loss"]["values"]) == 7


def test_an_empty_or_none_test_split_is_no_test_split(review_pkg):
    """(x, y, x[n:], y[n:]) with nothing held out, or (x, y, None, None): no test set, so test_loss
    is refused as bad input (an empty one crashed the case: range() arg 3 must not be zero)."""
    cpu = torch.device("cpu")
    for args in ({"n_test": 0}, {"none": True}):
        built = _review_problem(model="models:frozen_first", data="data:split", data_args=args).build(
            0, torch.float64, cpu)
        assert built.test is None and built.objective.n == 10
    built = _review_problem(model="models:frozen_first", data="data:split", data_args={"n_test": 3}).build(
        0, torch.float64, cpu)
    assert built.test is not None and built.test.n == 3
    with pytest.raises(SuiteError) as err:
        _review_problem(model="models:frozen_first", data="data:scalar_target")
    assert err.value.key == "problem.data" and "examples on the first axis" in err.value.message


def test_user_code_failing_where_no_check_foresaw_is_still_bad_input(review_pkg, tmp_path, capsys):
    """Whatever the user's model raises while the problem is tried at load time is exit 2 naming
    the file and [problem], never a traceback."""
    with pytest.raises(SuiteError) as err:
        _review_problem(model="models:NoEval")
    assert err.value.key == "problem" and "raised RuntimeError: this model has no eval mode" in err.value.message
    path = write_suite(tmp_path, f"""
        [problem]
        kind = "module"
        model = "{REVIEW_PKG}.models:NoEval"
        data = "{REVIEW_PKG}.data:regression"
        [optimizer]
        kind = "gd"
        lr = 0.1
        [run]
        steps = 1
        [measures.loss]
        [[expect]]
        name = "x"
        measure = "loss"
        statistic = "first"
        check = "ge"
        bound = 0
        """)
    assert main(["run", str(path), "--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    stderr = capsys.readouterr().err
    assert f"{path}: problem: " in stderr and "Traceback" not in stderr


def test_lazy_modules_are_initialised_from_the_cases_seed(review_pkg):
    """nn.LazyLinear materialises on its first forward: that pass runs on the CPU under the case's
    seeded generator (it ran later, from the global generator: every build started elsewhere)."""
    problem = _review_problem(model="models:lazy")
    cpu = torch.device("cpu")
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = problem.build(0, torch.float64, cpu)
    b = problem.build(0, torch.float64, cpu).theta0
    assert torch.equal(torch.random.get_rng_state(), before)
    assert a.theta0.numel() == (5 * 4 + 4) + (4 + 4) + (4 * 2 + 2) and torch.equal(a.theta0, b)
    assert not torch.equal(a.theta0, problem.build(1, torch.float64, cpu).theta0)
    bn = a.module[1]
    assert torch.equal(bn.running_mean, torch.zeros(4, dtype=torch.float64))  # untouched by the dry forward
