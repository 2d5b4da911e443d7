"""pytest plugin (entry point ``pytest11``): suite files become test items, one per case.

Every ``*.toml`` under the ini option ``harness_suite_dirs`` (default ``suites``), or named
on the command line, is a suite. Items carry the ``slow`` marker (unless the suite says
``slow = false``) and ``cuda`` for CUDA cases; a CUDA item on a machine without a GPU is
*skipped with a reason*, never dropped. ``--device cpu|cuda|all`` picks the devices that run
(the others are skipped, with the reason). A failed item prints, for each failed
expectation: measured statistic, predicted value, tolerance, window and the last
measurements. Records go to ``--harness-out`` (default ``results/``; ``""`` writes none).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .errors import HarnessError
from .records import new_run_id, record_path, write_json_atomic
from .runner import Case, CaseResult, cuda_available, evaluate_sweeps, expand, group_key, run_case, sweep_record
from .suite import load_suite
from .tables import failure_table


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("theory-harness")
    group.addoption("--device", choices=["cpu", "cuda", "all"], default="all",
                    help="theory-harness: devices whose suite cases run (others are skipped); default all")
    group.addoption("--harness-out", default="results",
                    help="theory-harness: folder for result records ('' to write none); default results/")
    parser.addini("harness_suite_dirs", "folders whose *.toml files are theory-harness suites",
                  type="args", default=["suites"])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: a theory-harness case on a CUDA device")
    config.addinivalue_line("markers", "slow: a theory-harness case that trains a model")
    config._harness_run_id = new_run_id()
    config._harness_results = {}


def _is_suite(file_path: Path, parent: pytest.Collector) -> bool:
    if file_path.suffix != ".toml":
        return False
    if parent.session.isinitpath(file_path):
        return True
    root = Path(parent.config.rootpath)
    for d in parent.config.getini("harness_suite_dirs"):
        try:
            file_path.resolve().relative_to((root / d).resolve())
            return True
        except ValueError:
            continue
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if _is_suite(file_path, parent):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def _mark(item: pytest.Item, suite, device: str) -> pytest.Item:
    if suite.slow:
        item.add_marker(pytest.mark.slow)
    if device == "cuda":
        item.add_marker(pytest.mark.cuda)
        if not cuda_available():
            item.add_marker(pytest.mark.skip(reason="CUDA is not available on this machine"))
    chosen = item.config.getoption("--device")
    if chosen != "all" and device != chosen:
        item.add_marker(pytest.mark.skip(reason=f"device {device} not selected (--device {chosen})"))
    return item


def _result(config: pytest.Config, case: Case) -> CaseResult:
    """A case's result, run once per session (case items and sweep items share it)."""
    cache = config._harness_results
    key = (case.suite.file, case.suite.sha256, case.id)
    if key not in cache:
        result = run_case(case)
        out = config.getoption("--harness-out")
        if out:
            run_id = config._harness_run_id
            path = record_path(Path(config.rootpath) / out, run_id, case.suite.id, case.id)
            result.info["record"] = str(write_json_atomic(path, result.record(run_id)))
        cache[key] = result
    return cache[key]


class SuiteFile(pytest.File):
    def collect(self):
        try:
            rel = self.path.relative_to(self.config.rootpath)
        except ValueError:
            rel = self.path
        suite = load_suite(rel)
        cases = expand(suite)
        for case in cases:
            yield _mark(CaseItem.from_parent(self, name=case.id, case=case), suite, case.device)
        groups: dict[str, dict[str, Case]] = {}
        for e in suite.sweep_expectations:
            for case in cases:
                groups.setdefault(group_key(case, e.across), {})[case.id] = case
        for key, by_id in groups.items():
            members = list(by_id.values())
            item = SweepItem.from_parent(self, name=f"sweep[{key}]", suite=suite, key=key, cases=members)
            yield _mark(item, suite, members[0].device)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, HarnessError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class CaseFailed(Exception):
    def __init__(self, result: CaseResult):
        self.result = result
        super().__init__(f"{sum(not v.passed for v in result.verdicts)} expectation(s) failed")


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, **kwargs):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        result = _result(self.config, self.case)
        if "record" in result.info:
            self.user_properties.append(("record", result.info["record"]))
        if not result.passed:
            raise CaseFailed(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailed):
            r = excinfo.value.result
            head = f"{self.case.suite.id} [{self.case.id}] ({self.case.suite.file}): {r.case.suite.claim}"
            return "\n\n".join([head] + [failure_table(v) for v in r.verdicts if not v.passed])
        if isinstance(excinfo.value, HarnessError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"{self.case.suite.id}::{self.case.id}"


class SweepFailed(Exception):
    def __init__(self, verdicts):
        self.verdicts = verdicts
        super().__init__(f"{sum(not v.passed for v in verdicts)} sweep expectation(s) failed")


class SweepItem(pytest.Item):
    """Every ``[[sweep_expect]]`` of a suite on one group of cases (differing in the swept axis)."""

    def __init__(self, *, suite, key: str, cases: list[Case], **kwargs):
        super().__init__(**kwargs)
        self.suite, self.key, self.cases = suite, key, cases

    def runtest(self) -> None:
        results = [_result(self.config, c) for c in self.cases]
        members, verdicts = evaluate_sweeps(self.suite, results).get(self.key, (results, []))
        out = self.config.getoption("--harness-out")
        if out:
            run_id = self.config._harness_run_id
            path = Path(self.config.rootpath) / out / run_id / self.suite.id / f"sweep-{self.key}.json"
            write_json_atomic(path, sweep_record(self.suite, self.key, members, verdicts, run_id))
        if not verdicts or not all(v.passed for v in verdicts):
            raise SweepFailed(verdicts)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SweepFailed):
            head = f"{self.suite.id} [{self.key}] ({self.suite.file}): {self.suite.claim}"
            if not excinfo.value.verdicts:
                return head + "\n\nno case of this sweep group produced a result"
            return "\n\n".join([head] + [failure_table(v) for v in excinfo.value.verdicts if not v.passed])
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"{self.suite.id}::sweep[{self.key}]"
