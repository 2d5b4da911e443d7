"""asv benchmarks of the suites: one step of each suite's training loop (time and memory), and
one theory metric per suite, so that numerical drift shows beside speed."""

from pathlib import Path

import torch

from harness import expand, load_suite, run_case
from harness.measures import StepContext

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
        opt = case.suite.optimizer(dict(case.point))
        self.opt = opt.bind(self.problem) if hasattr(opt, "bind") else opt
        self.state = self.opt.init(self.problem.theta0)

    def _step(self):
        ctx = StepContext(0, self.problem.theta0, self.problem, self.opt, self.state)
        self.opt.step(self.problem.theta0, self.state, ctx.value_and_grad)

    def time_one_step(self, name):
        self._step()

    def peakmem_one_step(self, name):
        self._step()


class SuiteMetric:
    """The first expectation's measured statistic on the suite's first CPU case."""

    params = [IDS]
    param_names = ["suite"]
    timeout = 900

    def track_first_expectation(self, name):
        torch.set_num_threads(1)
        result = run_case(_first_cpu_case(name))
        if not result.verdicts or result.verdicts[0].measured is None:
            raise NotImplementedError("no asserted statistic")  # report-only suites
        return result.verdicts[0].measured

    track_first_expectation.unit = "statistic"
