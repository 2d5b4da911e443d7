"""What predictions bind from the update rule (harness.training.optimizers.roles): the rule that
runs, in absolute units, with its defaults, and the nominal values under a calibration."""

import pytest

from harness import expand, load_suite, run_case
from harness.training.optimizers import GD, HeavyBall, ScaledSGD, TorchOptim, in_absolute_units, roles
from suite_text import VALID, write


def test_a_built_in_rule_binds_its_fields_with_defaults():
    assert roles(HeavyBall(lr=0.1)) == {"lr": 0.1, "momentum": 0.9}


def test_a_torch_optimizer_binds_its_own_defaults_under_the_files_keys():
    r = roles(TorchOptim("torch.optim.SGD", (("lr", 0.2),)))
    assert r["lr"] == 0.2 and r["momentum"] == 0 and r["nesterov"] is False
    assert roles(TorchOptim("torch.optim.Adam", (("lr", 0.01),)))["betas"] == (0.9, 0.999)


def test_a_step_size_in_edge_units_binds_the_step_size_that_runs():
    rule = ScaledSGD(lr=4.0, lr_unit="edge_at_init")
    runs = in_absolute_units(rule, unit=0.05)
    assert roles(runs)["lr"] == pytest.approx(0.2) and roles(runs)["lr_unit"] == "absolute"
    assert in_absolute_units(GD(lr=0.3), unit=0.05) == GD(lr=0.3)  # absolute rules are left alone


def test_a_torch_optimizers_default_momentum_is_bindable_in_a_suite(tmp_path):
    text = VALID.replace('kind = "gd"\nlr = [0.1, 0.2]', 'kind = "torch_optim"\nclass = "torch.optim.SGD"\nlr = [0.1, 0.2]')
    text = text.replace('predict = "gd_edge"', 'predict = "heavy_ball_edge"')
    s = load_suite(write(tmp_path, text.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]')))
    r = run_case(expand(s, ["cpu"])[0])
    assert r.bindings["momentum"] == 0 and r.verdicts[0].predicted == pytest.approx(2 / 0.1)


def test_calibration_predictions_bind_the_nominal_step_size(tmp_path):
    s = load_suite(write(tmp_path, VALID.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]')))
    case = expand(s, ["cpu"])[0]
    perturbed = case.__class__(case.suite, case.point, case.seed, case.device, (("optimizer.lr", 1.1),))
    r = run_case(perturbed)
    assert r.bindings["lr"] == pytest.approx(0.1)  # the rule stepped with 0.11
