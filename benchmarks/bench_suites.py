"""asv benchmarks of the suites: one step of each suite's training loop (time and memory), and
one theory metric per family of suites, so that numerical drift shows beside speed (the whole
catalogue's drift is ``theory-harness compare``'s job)."""

from pathlib import Path

import torch

from harness import expand, load_suite, run_case
from harness.measures import StepContext
from harness.training.optimizers import in_absolute_units, init_state, step_size_unit
from harness.spec.reader import update_rule

SUITES = Path(__file__).resolve().parent.parent / "suites"
IDS = sorted(p.stem for p in SUITES.glob("*.toml"))


def _first_cpu_case(name):
    cases = [c for c in expand(load_suite(SUITES / f"{name}.toml"), ["cpu"]) if c.seed == c.suite.seeds[0]]
    return cases[0]


class SuiteStep:
    params = [IDS]
    param_names = ["suite"]
    timeout = 300
    rounds = 1
    repeat = (1, 5, 2.0)

    def setup(self, name):
        torch.set_num_threads(1)
        case = _first_cpu_case(name)
        self.problem = case.suite.problem.build(case.seed, getattr(torch, case.dtype), torch.device("cpu"))
        stated = update_rule(case.suite)  # as the runner sets a case up: lr in absolute units, state from init
        self.opt = in_absolute_units(stated, step_size_unit(stated, self.problem))
        self.state = init_state(self.opt, self.problem.theta0, self.problem)

    def _step(self):
        ctx = StepContext(0, self.problem.theta0, self.problem, self.opt, self.state)
        self.opt.step(self.problem.theta0, self.state, ctx.value_and_grad)

    def time_one_step(self, name):
        self._step()

    def peakmem_one_step(self, name):
        self._step()


def asserts_a_statistic(name) -> bool:
    """Whether the suite's first CPU case has an expectation (report-only suites have none)."""
    case = _first_cpu_case(name)
    return not case.suite.report_only and any(e.applies(dict(case.point)) for e in case.suite.expectations)


# One cheap suite of each family (1-7 s each on one CPU thread; all 22 asserting suites take
# about 3.5 minutes, most of a quick asv run): EoS, stability edges, SAM, DMF, two-layer ReLU,
# the Jacobian sweep and beyond-EoS. Adding a suite here is fine; removing one ends its history.
# (dmf_identity_depth2 and stability_gd_quadratic became the first cases of dmf_identity and
# stability_quadratic when those files were merged: the same runs, a new history.)
METRIC_IDS = ["beyond_eos_plain_sgd_explodes", "dmf_identity", "eos_gd_mse", "jacobian_flatness_sweep",
              "relu_wide_regime", "sam_quadratic_orbit", "stability_quadratic"]


class SuiteMetric:
    """The first expectation's measured statistic on the suite's first CPU case, for the suites of
    :data:`METRIC_IDS`. Each must assert a statistic (``tests/test_benchmarks.py`` checks it): a
    report-only suite has no row here, since asv skips only what ``setup`` refuses and a body
    that raises is a failed row."""

    params = [METRIC_IDS]
    param_names = ["suite"]
    timeout = 900

    def track_first_expectation(self, name):
        torch.set_num_threads(1)
        result = run_case(_first_cpu_case(name))
        if result.error or not result.verdicts or result.verdicts[0].measured is None:
            raise RuntimeError(f"{name}: no measured statistic ({result.error or result.skipped or 'no verdict'})")
        return result.verdicts[0].measured

    track_first_expectation.unit = "statistic"
