"""pytest plugin (entry point ``pytest11``): suite files become test items, one per case.

Every ``*.toml`` under the ini option ``harness_suite_dirs`` (default ``suites``), or named
on the command line, is a suite, and so is every ``*.toml`` with a ``[suite]`` table under a
folder named on the command line (``pytest path/to/my_suites``, wherever the folder is). Items carry the ``slow`` marker (unless the suite says
``slow = false``) and ``cuda`` for CUDA cases; a CUDA item on a machine without a GPU is
*skipped with a reason*, never dropped. ``--device cpu|cuda|all`` picks the devices that run
(the others are skipped, with the reason). A failed item prints, for each failed
expectation: measured statistic, predicted value, tolerance, window and the last
measurements. Records go to ``--harness-out`` (default ``results/``; ``""`` writes none).

Under pytest-xdist (``pytest -n auto``; the plugin turns xdist's default ``--dist load`` into
``--dist loadgroup`` unless ``--dist`` is given): every worker writes into the controller's one
run folder (its run id is handed to the workers), each case runs on exactly one worker (a sweep group and its cases
share a group, so no case is run twice and no record written twice; the controller computes the
groups from the suite files itself, see :class:`SuiteGroups`), each worker
uses ``cores / workers`` torch threads, and on a machine with several visible GPUs worker
``gwK`` is pinned to visible GPU ``K mod count`` (indices are those of the caller's
``CUDA_VISIBLE_DEVICES``). ``--harness-cuda-workers one`` (the default with fewer than two
GPUs) keeps every CUDA item on one worker.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import scipy.stats  # noqa: F401 - before any pytester run: harness.spec.statistics imports it lazily, and a C
import torch       # extension first imported inside a pytester run cannot be loaded again once that run ends

from .errors import HarnessError
from .registry import load_plugins
from .output.records import case_record, new_run_id, record_path, sweep_record, write_json_atomic
from .run.runner import Case, CaseResult, cuda_available, evaluate_sweeps, expand, group_key, run_case
from .spec.reader import check_unique_ids, load_suite
from .output.tables import failure_table

# pytest finds the hooks (pytest_*) by name; these are what other code may import
__all__ = ["SuiteFile", "CaseItem", "SweepItem", "SuiteGroups", "suite_items", "xdist_groups", "looks_like_suite",
           "worker_gpu_index", "physical_gpu"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("theory-harness")
    group.addoption("--device", choices=["cpu", "cuda", "all"], default="all",
                    help="theory-harness: devices whose suite cases run (others are skipped); default all")
    group.addoption("--harness-out", default="results",
                    help="theory-harness: folder for result records ('' to write none); default results/")
    group.addoption("--harness-cuda-workers", choices=["auto", "one", "each"], default="auto",
                    help="theory-harness under xdist: keep CUDA items on one worker ('one'), or spread them with "
                         "one visible GPU per worker ('each'); 'auto': one with fewer than 2 visible GPUs")
    group.addoption("--harness-threads", type=int, default=None,
                    help="theory-harness: torch CPU threads (default: torch's; under xdist cores // workers)")
    parser.addini("harness_suite_dirs", "folders whose *.toml files are theory-harness suites",
                  type="args", default=["suites"])
    parser.addini("harness_plugins", "modules imported before any suite is read (plugins that register problems, "
                  "update rules, measures, predictions, losses or data sets); entry points of the group "
                  "'theory_harness.plugins' are loaded without it", type="args", default=[])


def worker_gpu_index(worker_id: str, count: int) -> int | None:
    """The visible GPU an xdist worker is pinned to: ``gwK`` -> ``K mod count`` (None: no GPU, or
    not a worker). Indices count the caller's ``CUDA_VISIBLE_DEVICES``, as torch does."""
    if count < 1 or not worker_id.startswith("gw") or not worker_id[2:].isdigit():
        return None
    return int(worker_id[2:]) % count


def physical_gpu(index: int, visible: str | None) -> str:
    """What visible GPU ``index`` is on the machine: the ``index``-th entry of
    ``CUDA_VISIBLE_DEVICES`` when the caller set it, else the index itself."""
    entries = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    return entries[index] if index < len(entries) else str(index)


def _cuda_one_worker(config: pytest.Config) -> bool:
    choice = config.getoption("--harness-cuda-workers")
    return choice == "one" or (choice == "auto" and torch.cuda.device_count() < 2)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: a theory-harness case on a CUDA device")
    config.addinivalue_line("markers", "slow: a theory-harness case that trains a model")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup: items of a group share a worker")
    worker = getattr(config, "workerinput", None)
    if worker is not None and worker.get("harness_loadgroup"):
        config.option.loadgroup = True  # xdist's worker reads it when it names the items
    try:  # plugin modules register their kinds before any suite is collected
        load_plugins(config.getini("harness_plugins"), entry_points=False)
    except HarnessError as exc:
        raise pytest.UsageError(f"theory-harness: ini option harness_plugins: {exc}") from None
    config._harness_run_id = (worker or {}).get("harness_run_id") or new_run_id()
    config._harness_results = {}
    config._harness_suites = {}  # suite.id -> the first suite collected with it
    config._harness_deprecated = []  # suite files in a deprecated form: how to write them now
    config._harness_gpu = None
    threads = config.getoption("--harness-threads")
    if worker is not None:
        threads = threads or max(1, (os.cpu_count() or 1) // int(worker.get("workercount", 1)))
        if not _cuda_one_worker(config) and torch.cuda.is_available():
            index = worker_gpu_index(worker["workerid"], torch.cuda.device_count())
            if index is not None:
                torch.cuda.set_device(index)
                config._harness_gpu = index
    if threads:
        torch.set_num_threads(threads)


def _dist_given(config: pytest.Config) -> bool:
    args = [*config.invocation_params.args, *config.getini("addopts"), *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    return any(a in ("--dist", "-d", "--distload") or a.startswith("--dist=") for a in map(str, args))


def pytest_cmdline_main(config: pytest.Config) -> None:
    """pytest-xdist's ``-n`` implies ``--dist load``; unless ``--dist`` was given, use ``loadgroup``
    so a sweep group and its cases stay on one worker (runs after xdist's own, tryfirst, hook)."""
    if getattr(config.option, "dist", "no") == "load" and not _dist_given(config):
        config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist (controller): every worker writes into the controller's run folder."""
    node.workerinput["harness_run_id"] = node.config._harness_run_id
    node.workerinput["harness_loadgroup"] = node.config.getoption("dist") == "loadgroup"


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    """Suite files written in a deprecated form (they still run): how to write them now."""
    for message in dict.fromkeys(getattr(config, "_harness_deprecated", [])):
        terminalreporter.write_line(f"theory-harness: {message}", yellow=True)


def pytest_report_header(config: pytest.Config) -> list[str]:
    out = config.getoption("--harness-out")
    where = f"records in {Path(out) / config._harness_run_id}" if out else "no records (--harness-out '')"
    lines = [f"theory-harness: {where}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
             f"CUDA devices visible: {torch.cuda.device_count()}"]
    if config.pluginmanager.hasplugin("dsession") or getattr(config.option, "numprocesses", None):
        dist = getattr(config.option, "dist", "no")
        lines.append(f"theory-harness under xdist (--dist {dist}): CUDA items "
                     f"{'on one worker' if _cuda_one_worker(config) else 'spread, one visible GPU per worker'}"
                     + ("" if dist == "loadgroup" else "; without --dist loadgroup a sweep item may re-run its "
                        "cases on another worker"))
    return lines


_SUITE_TABLE = re.compile(r"^\s*\[suite\]\s*(#.*)?$", re.MULTILINE)


def looks_like_suite(file_path: Path) -> bool:
    """A ``.toml`` file with a top-level ``[suite]`` table (``pyproject.toml`` and other
    configuration files have none). Unreadable text counts as a suite, so that a broken
    suite file is reported rather than passed over."""
    try:
        return bool(_SUITE_TABLE.search(file_path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return True


def _is_suite(file_path: Path, parent: pytest.Collector) -> bool:
    """A suite is a ``.toml`` file named on the command line, any ``.toml`` file under a folder
    of the ini option ``harness_suite_dirs``, or a ``.toml`` file with a ``[suite]`` table under a
    folder named on the command line (``pytest path/to/my_suites`` wherever that folder is)."""
    if file_path.suffix != ".toml":
        return False
    session = parent.session
    if session.isinitpath(file_path):
        return True
    resolved = file_path.resolve()
    root = Path(parent.config.rootpath)
    for d in parent.config.getini("harness_suite_dirs"):
        if resolved.is_relative_to((root / d).resolve()):
            return True
    named = [Path(str(a).split("::")[0]) for a in parent.config.args]
    under_named = any(resolved.is_relative_to((Path(parent.config.invocation_params.dir) / a).resolve())
                      for a in named)
    return under_named and looks_like_suite(file_path)


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


def xdist_groups(suite_id: str, cases: list[Case], sweeps: dict[str, dict[str, Case]], cuda_one_worker: bool
                 ) -> dict[str, str]:
    """``{case id: xdist group}``: CUDA cases share one group when they must stay on one worker;
    the cases of sweep groups that overlap (a case in two sweeps along different axes) share one
    group with their sweep items; every other case has none (any worker)."""
    parent = {c.id: c.id for c in cases}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for members in sweeps.values():
        ids = list(members)
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    in_sweep = {cid for members in sweeps.values() for cid in members}
    out = {}
    for c in cases:
        if c.device == "cuda" and cuda_one_worker:
            out[c.id] = "theory-harness-cuda"
        elif c.id in in_sweep:
            out[c.id] = f"{suite_id}::{find(c.id)}"
    return out


def _group(item: pytest.Item, name: str | None) -> pytest.Item:
    if name is not None:
        item.add_marker(pytest.mark.xdist_group(name))
    return item


def _result(config: pytest.Config, case: Case) -> CaseResult:
    """A case's result, run once per session (case items and sweep items share it)."""
    cache = config._harness_results
    key = (case.suite.file, case.suite.sha256, case.id)
    if key not in cache:
        result = run_case(case)
        if config._harness_gpu is not None and case.device == "cuda":
            result.info["cuda_device"] = physical_gpu(config._harness_gpu, os.environ.get("CUDA_VISIBLE_DEVICES"))
        out = config.getoption("--harness-out")
        if out:
            run_id = config._harness_run_id
            path = record_path(Path(config.rootpath) / out, run_id, case.suite.id, case.id)
            result.info["record"] = str(write_json_atomic(path, case_record(result, run_id)))
        cache[key] = result
    return cache[key]


def suite_items(suite, cuda_one_worker: bool) -> tuple[list[Case], dict[str, dict[str, Case]], dict[str, str]]:
    """A suite's cases, its sweep groups ``{key: {case id: case}}`` and ``{item name: xdist
    group}`` for the items that must share a worker (a case item is named by its case id, a
    sweep item ``sweep[KEY]``). The collector and the controller's scheduler both use it."""
    cases = expand(suite)
    sweeps: dict[str, dict[str, Case]] = {}
    for e in suite.sweep_expectations:
        for case in cases:
            sweeps.setdefault(group_key(case, e.across), {})[case.id] = case
    by_case = xdist_groups(suite.id, cases, sweeps, cuda_one_worker)
    names = dict(by_case)
    for key, members in sweeps.items():
        group = by_case.get(next(iter(members)))
        if group is not None:
            names[f"sweep[{key}]"] = group
    return cases, sweeps, names


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


class SuiteFile(pytest.File):
    def collect(self):
        # named as the command line would name it: relative to where pytest was started
        suite = load_suite(_relative(self.path, Path(self.config.invocation_params.dir)))
        # two files with one suite.id would write one record folder: refuse the second, naming both
        first = self.config._harness_suites.setdefault(suite.id, suite)
        check_unique_ids([first, suite])
        if suite.deprecated:  # shown in the terminal summary (the old sweep form still runs)
            self.config._harness_deprecated.append(suite.deprecated)
        cases, sweeps, groups = suite_items(suite, _cuda_one_worker(self.config))
        for case in cases:
            yield _group(_mark(CaseItem.from_parent(self, name=case.id, case=case), suite, case.device),
                         groups.get(case.id))
        for key, by_id in sweeps.items():
            members = list(by_id.values())
            name = f"sweep[{key}]"
            item = SweepItem.from_parent(self, name=name, suite=suite, key=key, cases=members)
            yield _group(_mark(item, suite, members[0].device), groups.get(name))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, HarnessError):
            return _message_repr(excinfo)
        return super().repr_failure(excinfo)


def _message_repr(excinfo):
    """The exception's own text, no traceback; its first line is the reason pytest's short test
    summary prints (``ERROR suites/x.toml - suites/x.toml: run.stepz: unknown key``)."""
    rep = excinfo.getrepr(style="value")
    if getattr(rep, "reprcrash", None) is not None:
        rep.reprcrash.message = str(excinfo.value).split("\n", 1)[0]  # without the exception's class
    return rep


# --- pytest-xdist: the controller's scheduler ----------------------------------------------------

class SuiteGroups:
    """``nodeid -> xdist group`` for suite items, computed on the controller from the suite files.

    pytest-xdist's ``loadgroup`` learns an item's group from a ``@group`` suffix that each worker
    appends to the item's node id. pytest 9.2 builds node ids from a structured ``NodeId`` and no
    longer reads the attribute xdist writes, so with pytest >= 9.2 and pytest-xdist <= 3.8 the
    suffix is silently lost and grouped items are spread like ``--dist load`` (pytest-xdist issue
    1386). The harness does not depend on that side channel: the controller loads the suite file
    a node id names and computes the same groups the collector marks."""

    def __init__(self, rootpath: Path, cuda_one_worker: bool, deprecated: list[str] | None = None):
        self.rootpath, self.cuda_one_worker = Path(rootpath), cuda_one_worker
        self._files: dict[str, dict[str, str]] = {}
        self.deprecated = deprecated if deprecated is not None else []  # messages of old-form suites seen

    def __call__(self, nodeid: str) -> str | None:
        if nodeid.rfind("@") > nodeid.rfind("]"):  # the suffix older pytest keeps
            nodeid = nodeid[:nodeid.rfind("@")]
        path, sep, name = nodeid.partition("::")
        if not sep or not path.endswith(".toml"):
            return None
        if path not in self._files:
            try:
                suite = load_suite(self.rootpath / path)
                self._files[path] = suite_items(suite, self.cuda_one_worker)[2]
                if suite.deprecated and suite.deprecated not in self.deprecated:
                    self.deprecated.append(suite.deprecated)
            except (HarnessError, OSError):
                self._files[path] = {}
        return self._files[path].get(name)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Under ``--dist loadgroup`` (the plugin's default under ``-n``), xdist's own group scheduler
    with the suite items' groups computed here (see :class:`SuiteGroups`); other items keep the
    group of their ``xdist_group`` mark where xdist still sees it, else run anywhere."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    groups = SuiteGroups(config.rootpath, _cuda_one_worker(config), config._harness_deprecated)

    class SuiteGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            group = groups(nodeid)
            return f"theory-harness::{group}" if group is not None else super()._split_scope(nodeid)

    return SuiteGroupScheduling(config, log)


def _failed_names(verdicts) -> str:
    names = [v.name for v in verdicts if not v.passed]
    return f"{len(names)} expectation(s) failed: {', '.join(names)}"


class CaseFailed(Exception):
    """A case whose expectations did not all hold; its text is the reason (first line) and a
    table per failed expectation."""

    def __init__(self, result: CaseResult):
        self.result = result
        case = result.case
        head = f"{case.suite.id} [{case.id}] ({case.suite.file}): {case.suite.claim}"
        if result.error:
            reason = f"the case raised {result.error}"
        else:
            reason = "; ".join(filter(None, [_failed_names(result.verdicts), result.divergence_message]))
        super().__init__("\n\n".join([reason, head] + [failure_table(v) for v in result.verdicts if not v.passed]))


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, **kwargs):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        result = _result(self.config, self.case)
        if "record" in result.info:
            self.user_properties.append(("record", result.info["record"]))
        if result.invalid:
            raise HarnessError(result.invalid)
        if not result.passed:
            raise CaseFailed(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (CaseFailed, HarnessError)):
            return _message_repr(excinfo)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"{self.case.suite.id}::{self.case.id}"


class SweepFailed(Exception):
    """Sweep expectations of one group that did not all hold (or no case produced a result)."""

    def __init__(self, suite, key: str, verdicts):
        self.verdicts = verdicts
        head = f"{suite.id} [{key}] ({suite.file}): {suite.claim}"
        if not verdicts:
            super().__init__(f"no case of this sweep group produced a result\n\n{head}")
        else:
            super().__init__("\n\n".join([_failed_names(verdicts), head]
                                          + [failure_table(v) for v in verdicts if not v.passed]))


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
            raise SweepFailed(self.suite, self.key, verdicts)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (SweepFailed, HarnessError)):
            return _message_repr(excinfo)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"{self.suite.id}::sweep[{self.key}]"
