"""What a user's kind must provide (mirrors harness/protocols.py): ``lacks`` says what is missing."""

from dataclasses import dataclass

import pytest
import torch

from harness import GD
from harness.kernels.losses import mse
from harness.protocols import KINDS, lacks
from harness.training.optimizers import ProblemRule
from harness.training.problems import Quadratic


@dataclass(frozen=True)
class Rule:
    lr: float = 0.1

    def init(self, theta):
        return None

    def step(self, theta, state, value_and_grad):
        return theta - self.lr * value_and_grad(theta)[1], state


class NotADataclassRule:
    def init(self, theta):
        return None

    def step(self, theta, state, value_and_grad):
        return theta, state


@dataclass(frozen=True)
class NoStepRule:
    lr: float = 0.1

    def init(self, theta):
        return None


@dataclass(frozen=True)
class GroupRule(ProblemRule):
    lr: float = 0.1

    def init(self, theta, problem):
        return dict(problem.groups)

    def step(self, theta, state, value_and_grad):
        return theta, state


@dataclass(frozen=True)
class ProblemInitWithoutProblemRule:
    """A plain rule (not a ProblemRule) whose init wants the problem too."""

    def init(self, theta, problem):
        return None

    def step(self, theta, state, value_and_grad):
        return theta, state


@dataclass(frozen=True)
class ProblemRuleWithThetaOnlyInit(ProblemRule):
    def init(self, theta):
        return None

    def step(self, theta, state, value_and_grad):
        return theta, state


def test_valid_update_rule_lacks_nothing():
    assert lacks("optimizer", Rule) == ""


def test_built_in_gd_lacks_nothing():
    assert lacks("optimizer", GD) == ""


def test_non_dataclass_rule_is_reported():
    assert "it is not a dataclass" in lacks("optimizer", NotADataclassRule)


def test_rule_without_step_is_reported():
    assert "it lacks a method step()" in lacks("optimizer", NoStepRule)


def test_missing_method_message_names_the_protocol():
    assert lacks("optimizer", NoStepRule).endswith("(protocol: harness.protocols.UpdateRule)")


def test_rule_instance_is_reported_as_not_a_class():
    assert "not a class" in lacks("optimizer", Rule())


def test_problem_rule_with_problem_init_lacks_nothing():
    assert lacks("optimizer", GroupRule) == ""


def test_plain_rule_with_problem_init_is_reported():
    assert "it lacks a method init() taking 1 argument(s)" in lacks("optimizer", ProblemInitWithoutProblemRule)


def test_problem_rule_with_theta_only_init_is_reported():
    assert "it lacks a method init() taking 2 argument(s)" in lacks("optimizer", ProblemRuleWithThetaOnlyInit)


def test_torch_optimizer_as_update_rule_points_to_torch_optim():
    assert 'kind = "torch_optim"' in lacks("optimizer", torch.optim.SGD)


def test_torch_optimizer_kind_accepts_sgd():
    assert lacks("torch optimizer", torch.optim.SGD) == ""


def test_torch_optimizer_kind_rejects_a_class_without_step():
    assert "it lacks a method step()" in lacks("torch optimizer", dict)


def test_problem_kind_lacks_nothing():
    assert lacks("problem", Quadratic) == ""


def test_module_as_problem_points_to_the_module_kind():
    assert 'kind = "module"' in lacks("problem", torch.nn.Linear)


def test_loss_function_lacks_nothing():
    assert lacks("loss", mse) == ""


def test_loss_with_one_argument_is_reported():
    assert "does not take 2 positional argument(s)" in lacks("loss", lambda outputs: outputs.sum())


def test_statistic_that_is_a_class_is_reported():
    assert "it is a class" in lacks("statistic", float)


def test_prediction_with_kwargs_is_reported():
    def edge(**kwargs):
        return 0.0

    assert "bound by its name" in lacks("prediction", edge)


def test_prediction_with_named_arguments_lacks_nothing():
    def edge(lr, momentum=0.0):
        return 2 / lr

    assert lacks("prediction", edge) == ""


def test_measure_without_call_is_reported():
    @dataclass(frozen=True)
    class NoCall:
        every: int = 1

    assert "it lacks a method __call__()" in lacks("measure", NoCall)


@pytest.mark.parametrize("kind", ["model", "data set"])
def test_non_callable_factory_is_reported(kind):
    assert "not callable" in lacks(kind, 3)


def test_unknown_kind_lacks_nothing():
    assert lacks("no such kind", object()) == ""


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_integer_is_reported_with_the_kinds_protocol(kind):
    assert "(protocol: harness.protocols." in lacks(kind, 3)
