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
from .runner import Case, CaseResult, cuda_available, expand, run_case
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


class SuiteFile(pytest.File):
    def collect(self):
        try:
            rel = self.path.relative_to(self.config.rootpath)
        except ValueError:
            rel = self.path
        suite = load_suite(rel)
        for case in expand(suite):
            item = CaseItem.from_parent(self, name=case.id, case=case)
            if suite.slow:
                item.add_marker(pytest.mark.slow)
            if case.device == "cuda":
                item.add_marker(pytest.mark.cuda)
                if not cuda_available():
                    item.add_marker(pytest.mark.skip(reason="CUDA is not available on this machine"))
            chosen = self.config.getoption("--device")
            if chosen != "all" and case.device != chosen:
                item.add_marker(pytest.mark.skip(reason=f"device {case.device} not selected (--device {chosen})"))
            yield item

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
        result = run_case(self.case)
        out = self.config.getoption("--harness-out")
        if out:
            run_id = self.config._harness_run_id
            path = record_path(Path(self.config.rootpath) / out, run_id, self.case.suite.id, self.case.id)
            self.user_properties.append(("record", str(write_json_atomic(path, result.record(run_id)))))
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
