"""Problem kinds (mirrors harness/training/problems.py): every registered kind builds a frozen
:class:`Problem` whose ``theta0`` is seeded, cast and moved as asked, and which fills exactly the
optional fields that kind provides."""

import dataclasses
import math

import pytest
import torch

from harness.training.problems import (PROBLEMS, MLP, DeepMatrixFactorization, HomogeneousMLP, ModuleProblem,
                                       Problem, Quadratic, TwoLayerReLU)

CPU = torch.device("cpu")

# one tiny, seed-dependent instance of every registered kind, with the number of parameters it has
KINDS = {
    # 3 -> 5 -> 2 with biases: 3*5 + 5 + 5*2 + 2
    "mlp": (lambda: MLP(widths=[5], n_samples=8, input_dim=3, n_outputs=2, teacher_width=4, n_test=4), 32),
    "quadratic": (lambda: Quadratic(eigenvalues=[3.0, 1.0, 0.5], init="gaussian"), 3),
    # depth 2 factors of 3 x 3
    "deep_matrix_factorization": (lambda: DeepMatrixFactorization(n=3, depth=2, spectrum=[2.0], init="random"), 18),
    # W (m x d) and a (m): 5*3 + 5
    "two_layer_relu": (lambda: TwoLayerReLU(n=4, d=3, m=5), 20),
    # widths 3, 2*1^2, 2*2^2, 2 (bias-free): 3*2 + 2*8 + 8*2
    "homogeneous_mlp": (lambda: HomogeneousMLP(input_dim=3, n_classes=2, depth=3, n1=2, n_samples=6, n_test=3,
                                               teacher_width=4), 38),
    # nn.Linear(3, 2) on the built-in teacher data: 3*2 + 2
    "module": (lambda: ModuleProblem(model="torch.nn:Linear", model_args={"in_features": 3, "out_features": 2},
                                     data_args={"n_samples": 8, "input_dim": 3, "n_outputs": 2, "n_test": 4}), 8),
}

# the optional fields of Problem each kind fills (the others stay None; groups stays empty)
PROVIDED = {
    "mlp": {"module", "test"},
    "quadratic": {"eigenvalues"},
    "deep_matrix_factorization": {"matrix", "target"},
    "two_layer_relu": {"groups", "kernel_top"},
    "homogeneous_mlp": {"test", "groups", "widths", "seed"},
    "module": {"test", "groups", "module"},
}
OPTIONAL = ("test", "matrix", "target", "groups", "module", "widths", "seed", "kernel_top", "eigenvalues")


def build(kind, seed=0, dtype=torch.float64, device=CPU):
    return KINDS[kind][0]().build(seed, dtype, torch.device(device))


def test_registry_lists_every_kind_under_test():
    assert sorted(PROBLEMS) == sorted(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_registered_name_resolves_to_the_kind_class(kind):
    assert isinstance(KINDS[kind][0](), PROBLEMS[kind])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_build_returns_a_problem(kind):
    assert isinstance(build(kind), Problem)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_theta0_has_n_params_entries(kind):
    p = build(kind)
    assert p.theta0.dim() == 1
    assert p.n_params == p.theta0.numel() == KINDS[kind][1]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_same_seed_gives_identical_theta0(kind):
    assert torch.equal(build(kind, seed=3).theta0, build(kind, seed=3).theta0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_another_seed_gives_a_different_theta0(kind):
    assert not torch.equal(build(kind, seed=3).theta0, build(kind, seed=4).theta0)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_seed_leaves_the_training_data_unchanged(kind):
    """The case's seed initialises the model; the data come from ``data_seed`` alone."""
    a, b = build(kind, seed=3).objective, build(kind, seed=4).objective
    assert torch.equal(a.inputs, b.inputs)
    assert torch.equal(a.targets, b.targets)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_build_leaves_the_global_rng_untouched(kind):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build(kind, seed=7)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_theta0_has_the_requested_dtype(kind):
    assert build(kind, dtype=torch.float32).theta0.dtype == torch.float32


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_float32_theta0_is_the_float64_theta0_rounded(kind):
    """Initialised in float64 on the CPU, then cast: every dtype starts from the same point."""
    p32, p64 = build(kind, dtype=torch.float32), build(kind, dtype=torch.float64)
    assert torch.equal(p32.theta0, p64.theta0.to(torch.float32))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_objective_data_have_the_requested_dtype(kind):
    obj = build(kind, dtype=torch.float32).objective
    assert obj.inputs.dtype == torch.float32
    assert obj.targets.dtype == torch.float32


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_loss_is_evaluated_in_the_requested_dtype(kind):
    p = build(kind, dtype=torch.float32)
    value = p.objective.value(p.theta0)
    assert value.dtype == torch.float32 and value.dim() == 0 and torch.isfinite(value)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_build_places_theta0_on_the_requested_device(kind, device):
    p = build(kind, device=device)
    assert p.theta0.device.type == device
    assert p.objective.inputs.device.type == device
    assert p.objective.targets.device.type == device


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_build_fills_exactly_the_fields_of_its_kind(kind):
    p = build(kind)
    filled = {name for name in OPTIONAL if getattr(p, name) not in (None, {})}
    assert filled == PROVIDED[kind]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_problem_is_frozen(kind):
    p = build(kind)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.theta0 = torch.zeros(1)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_problem_kind_options_are_frozen(kind):
    options = KINDS[kind][0]()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.data_seed = 5


@pytest.mark.parametrize("kind", ["two_layer_relu", "homogeneous_mlp", "module"])
def test_groups_tile_theta0_in_order(kind):
    p = build(kind)
    slices = list(p.groups.values())
    assert slices[0].start == 0 and slices[-1].stop == p.n_params
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))


@pytest.mark.parametrize("kind", ["mlp", "homogeneous_mlp", "module"])
def test_test_objective_holds_the_held_out_examples(kind):
    p = build(kind)
    assert p.test.n == {"mlp": 4, "homogeneous_mlp": 3, "module": 4}[kind]
    assert not torch.equal(p.test.inputs[:1], p.objective.inputs[:1])


@pytest.mark.parametrize("kind", ["mlp", "module"])
def test_module_parameters_flatten_to_theta0(kind):
    p = build(kind)
    flat = torch.cat([q.detach().reshape(-1) for q in p.module.parameters()])
    assert torch.equal(flat, p.theta0)


def test_mlp_without_n_test_has_no_test_objective():
    p = MLP(widths=[5], n_samples=8, input_dim=3, teacher_width=4).build(0, torch.float64, CPU)
    assert p.test is None


def test_mlp_loss_matches_a_dense_forward_pass():
    p = build("mlp")
    lin1, lin2 = p.module[0], p.module[2]
    x, y = p.objective.inputs, p.objective.targets
    with torch.no_grad():
        f = torch.tanh(x @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias
    expected = 0.5 * ((f - y) ** 2).sum(1).mean()
    assert float(p.objective.value(p.theta0)) == pytest.approx(float(expected), rel=1e-12)


def test_quadratic_records_its_eigenvalues():
    assert build("quadratic").eigenvalues == (3.0, 1.0, 0.5)


def test_quadratic_loss_is_half_w_a_w():
    prob = Quadratic(eigenvalues=[3.0, 1.0, 0.5], init="gaussian")
    q, lam = prob.matrix()
    p = prob.build(0, torch.float64, CPU)
    a = (q * lam) @ q.T
    w = p.theta0
    assert float(p.objective.value(w)) == pytest.approx(float(0.5 * w @ a @ w), rel=1e-12)


def test_quadratic_ones_init_does_not_depend_on_the_seed():
    """``init = "ones"`` is ``w_0 = Q 1``: the same for every seed (documented)."""
    prob = Quadratic(eigenvalues=[3.0, 1.0, 0.5])
    assert torch.equal(prob.build(0, torch.float64, CPU).theta0, prob.build(1, torch.float64, CPU).theta0)


def test_factorization_matrix_is_the_product_of_the_factors():
    p = build("deep_matrix_factorization")
    w = p.theta0.view(2, 3, 3)
    torch.testing.assert_close(p.matrix(p.theta0), w[1] @ w[0], rtol=1e-14, atol=1e-15)


def test_factorization_target_has_the_given_spectrum():
    p = build("deep_matrix_factorization")
    eig = torch.linalg.eigvalsh(p.target)
    torch.testing.assert_close(eig, torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64), rtol=0, atol=1e-12)


def test_factorization_target_has_the_requested_dtype():
    assert build("deep_matrix_factorization", dtype=torch.float32).target.dtype == torch.float32


def test_two_layer_relu_kernel_top_is_each_kernels_largest_eigenvalue():
    from harness.kernels.relu_kernels import relu_kernels

    prob = TwoLayerReLU(n=4, d=3, m=5)
    p = prob.build(0, torch.float64, CPU)
    k_w, k_a = relu_kernels(prob.data()[0])
    assert p.kernel_top["first"] == pytest.approx(float(torch.linalg.eigvalsh(k_w)[-1]), rel=1e-12)
    assert p.kernel_top["second"] == pytest.approx(float(torch.linalg.eigvalsh(k_a)[-1]), rel=1e-12)


def test_two_layer_relu_groups_are_its_two_layers():
    assert build("two_layer_relu").groups == {"first": slice(0, 15), "second": slice(15, 20)}


def test_homogeneous_mlp_records_its_widths():
    assert build("homogeneous_mlp").widths == (3, 2, 8, 2)


def test_homogeneous_mlp_records_its_seed():
    assert build("homogeneous_mlp", seed=5).seed == 5


def test_homogeneous_mlp_groups_are_its_layers():
    groups = build("homogeneous_mlp").groups
    assert groups == {"layer1": slice(0, 6), "layer2": slice(6, 22), "layer3": slice(22, 38)}


def test_module_problem_groups_are_named_by_parameter():
    assert build("module").groups == {"weight": slice(0, 6), "bias": slice(6, 8)}


def test_module_problem_module_is_in_eval_mode():
    assert not build("module").module.training


def test_module_problem_theta0_is_a_copy_of_the_parameters():
    p = build("module")
    before = p.theta0.clone()
    with torch.no_grad():
        p.module.weight.add_(1.0)
    assert torch.equal(p.theta0, before)


def test_n_params_counts_theta0_entries():
    obj = build("quadratic").objective
    assert Problem(obj, torch.zeros(7, dtype=torch.float64)).n_params == 7


def test_problem_defaults_leave_the_optional_fields_empty():
    p = Problem(build("quadratic").objective, torch.zeros(3, dtype=torch.float64))
    assert all(getattr(p, name) is None for name in OPTIONAL if name != "groups")
    assert p.groups == {}


def test_mlp_first_layer_weights_lie_within_the_default_init_bound():
    """``nn.Linear`` default init: weights within ``1/sqrt(fan_in)``."""
    p = build("mlp")
    assert float(p.module[0].weight.detach().abs().max()) <= 1 / math.sqrt(3)


def test_mlp_label_smoothing_needs_cross_entropy_and_a_value_below_one():
    with pytest.raises(ValueError, match="needs loss = 'cross_entropy'"):
        MLP(data="gaussian_clusters", n_outputs=3, loss="mse", label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        MLP(data="gaussian_clusters", n_outputs=3, loss="cross_entropy", label_smoothing=1.0)


def test_mlp_label_smoothing_smooths_the_training_and_test_losses():
    kw = dict(widths=[5], n_samples=8, input_dim=3, n_outputs=3, data="gaussian_clusters", loss="cross_entropy", n_test=4)
    plain, smoothed = (MLP(**kw, label_smoothing=e).build(0, torch.float64, CPU) for e in (0.0, 0.2))
    x, y = plain.objective.inputs, plain.objective.targets
    with torch.no_grad():
        expect = torch.nn.functional.cross_entropy(plain.module(x), y, label_smoothing=0.2)
    assert float(smoothed.objective.value(smoothed.theta0)) == pytest.approx(float(expect), rel=1e-12)
    assert float(smoothed.test.value(smoothed.theta0)) != pytest.approx(float(plain.test.value(plain.theta0)), rel=1e-6)
