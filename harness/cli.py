"""``theory-harness run | list | report | compare``.

Exit codes: 0 every expectation holds (``compare``: none went from passing to failing), 1 at
least one failed (``compare``: one that held on BASE fails on HEAD), 2 bad input or usage (a
malformed suite or record, an output that cannot be written, a path that does not exist), with
one line ``theory-harness: error: FILE: key.path: what was expected``. Nothing else exits 1:
an error the checks did not foresee is also exit 2, with a one-line message.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import torch

from .errors import HarnessError
from .run import distributed as dist
from .run.parallel import ParallelProgress, interrupt_on_signals, parse_jobs, parse_shard, run_parallel, select_shard, units
from .registry import load_plugins
from .output.records import (calibration_record, case_record, new_run_id, record_path, summary_record, sweep_record, writable_file, writable_folder,
                      write_bytes_replacing, write_json_atomic)
from .run.runner import CaseResult, cuda_available, default_device, evaluate_sweeps, expand, run_case
from .spec.types import Suite
from .spec.reader import check_unique_ids, load_suite
from .output.tables import SUMMARY_HEADER, format_table, summary_rows

__all__ = ["main", "find_suites", "load_suites"]


def find_suites(paths: list[str]) -> list[Path]:
    """The suite files named by ``paths`` (files, or folders searched for ``*.toml``)."""
    if not paths:
        if not Path("suites").is_dir():
            raise HarnessError("no suite paths given and no 'suites/' folder in the current directory")
        paths = ["suites"]
    files: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.toml") if f.is_file())
        elif p.exists():
            found = [p]
        else:
            raise HarnessError(f"{p}: no such file or folder")
        for f in found:  # a file named twice (or under two named folders) is one suite
            if f.resolve() not in seen:
                seen.add(f.resolve())
                files.append(f)
    if not files:
        raise HarnessError(f"{', '.join(map(str, paths))}: no suite files (*.toml) there")
    return files


def load_suites(paths: list[str]) -> list[Suite]:
    """Every suite named by ``paths``, validated, with distinct ids (:func:`check_unique_ids`)."""
    suites = [load_suite(f) for f in find_suites(paths)]
    check_unique_ids(suites)
    for s in suites:  # the old sweep form still runs; say how to write it now
        if s.deprecated:
            print(f"theory-harness: {s.deprecated}", file=sys.stderr)
    return suites


def _devices(choice: str | None) -> list[str] | None:
    if choice is None:
        return [default_device()]
    if choice == "all":
        return None
    if choice == "cuda" and not cuda_available():
        raise HarnessError("--device cuda: CUDA is not available on this machine (torch "
                           f"{torch.__version__}, torch.cuda.is_available() is False)")
    return [choice]


class _Progress:
    """One self-overwriting status line on a terminal; nothing otherwise."""

    def __init__(self, total: int, stream=sys.stderr, on: bool = True):
        self.total, self.stream = total, stream
        self.on = on and stream.isatty()
        self.index, self.label = 0, ""

    def case(self, index: int, label: str) -> None:
        self.index, self.label = index, label
        self(0, 1)

    def __call__(self, step: int, steps: int) -> None:
        if self.on:
            self.stream.write(f"\r\033[K[{self.index}/{self.total}] {self.label}  step {step}/{steps}")
            self.stream.flush()

    def done(self) -> None:
        if self.on:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` without its ``--nproc N`` / ``--nproc=N`` (what each rank of ``--nproc`` runs)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _check_data_parallel(args: argparse.Namespace, devices: list[str] | None, suites: list[Suite]) -> None:
    """Refuse, before any process starts or trains, what cannot run data-parallel."""
    if args.jobs > 1:
        raise HarnessError("--jobs: a data-parallel run (torchrun, --nproc) runs its cases one after another in "
                           "every rank; drop --jobs")
    if devices is None or len(devices) != 1:
        raise HarnessError("--device: a data-parallel run needs one device, cpu (gloo) or cuda (NCCL), not all")
    dist.check_shardable(suites)


def _join_world(args: argparse.Namespace, devices: list[str] | None, suites: list[Suite]):
    """The data-parallel world this process is a rank of (torchrun's environment), joined; None
    for a single-process run."""
    world = dist.world_from_environment()
    if world is None:
        return None
    _check_data_parallel(args, devices, suites)
    dist.init_world(world, devices[0], args.dist_timeout)
    return world


def _run(args: argparse.Namespace) -> int:
    launcher = args.nproc > 1 and dist.world_from_environment() is None
    devices = _devices(args.device)
    suites: list[Suite] = load_suites(args.paths)
    if launcher:  # checked once here, then the ranks start; each runs this command without --nproc
        _check_data_parallel(args, devices, suites)
        if not any(expand(s, devices) for s in suites):
            raise HarnessError(f"no cases: none of the suites declares device(s) {devices}")
        writable_folder(args.out, "--out")  # rank 0 writes there
        return dist.launch(args.nproc, _without_nproc(args.argv))
    cases = [c for s in suites for c in expand(s, devices)]
    if not cases:
        raise HarnessError(f"no cases: none of the suites declares device(s) {devices}")
    selected = len(cases)
    if args.shard:  # a stable subset, sweep groups whole (harness/run/parallel.py)
        cases = [cases[i] for i in select_shard(cases, *args.shard)]
    world = _join_world(args, devices, suites)
    try:
        return _run_cases(args, suites, cases, selected, world)
    finally:
        if world is not None:
            dist.leave_world()


def _run_cases(args: argparse.Namespace, suites: list[Suite], cases: list, selected: int, world) -> int:
    writes = world is None or world.writes  # in a data-parallel run, rank 0 alone writes and prints
    out = writable_folder(args.out, "--out") if writes else None  # before any training
    if args.threads:
        torch.set_num_threads(args.threads)
    run_id = new_run_id()
    done: list[CaseResult | None] = [None] * len(cases)

    def finished(index: int, result: CaseResult) -> None:
        done[index] = result
        if writes:
            write_json_atomic(record_path(out, run_id, result.case.suite.id, result.case.id), case_record(result, run_id))

    with interrupt_on_signals():  # kill (SIGTERM) stops the run like Ctrl-C: workers ended, a message, exit 128+n
        if args.jobs > 1 and cases:  # worker processes, one torch thread each unless --threads
            progress = ParallelProgress(len(cases))
            try:
                run_parallel(cases, units(cases), args.jobs, args.threads or 1, args.plugin, finished, progress)
            finally:
                progress.done()
        else:
            serial = _Progress(len(cases), on=writes)
            try:
                for i, case in enumerate(cases):
                    serial.case(i + 1, f"{case.suite.id} {case.id}")
                    finished(i, run_case(case, serial))
            finally:
                serial.done()
    results: list[CaseResult] = [r for r in done if r is not None]
    if len(results) != len(cases):  # run_parallel returns only when every case has its result
        raise HarnessError(f"{len(cases) - len(results)} case(s) have no result (a bug in theory-harness, please report it)")
    sweeps = []  # (suite id, group id, verdict)
    for suite in suites:
        for key, (members, verdicts) in evaluate_sweeps(suite, results).items():
            sweeps.extend((suite.id, key, v) for v in verdicts)
            if writes:
                write_json_atomic(out / run_id / suite.id / f"sweep-{key}.json",
                                  sweep_record(suite, key, members, verdicts, run_id))
    n_fail = sum(r.status == "failed" for r in results)
    s_fail = sum(not v.passed for _, _, v in sweeps)
    invalid = [r.invalid for r in results if r.invalid]
    code = 2 if invalid else 1 if n_fail or s_fail else 0
    if not writes:  # the same verdicts as rank 0's: the same exit code, nothing printed
        return code
    shard = {"index": args.shard[0], "count": args.shard[1], "cases": len(cases), "of": selected} if args.shard else None
    summary = summary_record(run_id, results, sweeps, shard)
    write_json_atomic(out / run_id / "summary.json", summary)
    print(format_table(SUMMARY_HEADER, summary_rows(results, sweeps)) if results else "(no cases in this shard)")
    if args.shard:
        print(f"\nshard {args.shard[0]}/{args.shard[1]}: {len(cases)} of the {selected} cases selected")
    n_pass = sum(r.status == "passed" for r in results)
    n_skip = sum(r.status == "skipped" for r in results)
    ranks = f" (data-parallel over {world.size} processes)" if world is not None else ""
    print(f"\ncases: {n_pass} passed, {n_fail} failed, {n_skip} skipped; sweep expectations: "
          f"{len(sweeps) - s_fail} passed, {s_fail} failed; records in {out / run_id}{ranks}")
    for message in dict.fromkeys(invalid):  # a suite that cannot run as written is bad input, not a failed claim
        print(f"theory-harness: error: {message}", file=sys.stderr)
    return code


def _calibrate(args: argparse.Namespace) -> int:
    from .output.tables import format_calibration
    from .run.calibrate import check_perturbation, extra_seeds, parse_perturbation, plan, summarize

    suites = load_suites([args.suite])
    if len(suites) != 1:
        raise HarnessError(f"{args.suite}: calibrate takes one suite file, found {len(suites)}")
    suite = suites[0]
    perturbations = [p for text in args.perturb for p in parse_perturbation(text)]
    for target in dict.fromkeys(t for t, _ in perturbations):
        check_perturbation(suite, target)
    cases = plan(suite, extra_seeds(suite, args.seeds), perturbations, _devices(args.device))
    if not cases:
        raise HarnessError(f"{args.suite}: no cases on device(s) {_devices(args.device)}")
    out = writable_folder(args.out, "--out")  # before any training
    if args.threads:
        torch.set_num_threads(args.threads)
    run_id = new_run_id()
    progress = _Progress(len(cases))
    results: list[CaseResult] = []
    for i, case in enumerate(cases, 1):
        progress.case(i, f"{case.suite.id} {case.id}")
        result = run_case(case, progress)
        results.append(result)
        write_json_atomic(record_path(out, run_id, case.suite.id, case.id), case_record(result, run_id))
    progress.done()
    record = calibration_record(summarize(suite, results), run_id)
    write_json_atomic(out / run_id / suite.id / "calibration.json", record)
    print(format_calibration(record))
    print(f"\nrecords and calibration.json in {out / run_id / suite.id}")
    invalid = [r.invalid for r in results if r.invalid]
    for message in dict.fromkeys(invalid):
        print(f"theory-harness: error: {message}", file=sys.stderr)
    return 2 if invalid else 0


def _list(args: argparse.Namespace) -> int:
    rows = []
    for s in load_suites(args.paths):
        n = len(s.sweep_points()) * len(s.seeds)
        n_expect = len({e.name for v in (s.variants or (s,)) for e in v.expectations})
        rows.append([s.id, s.file, ",".join(s.devices), str(n), str(n_expect), s.claim[:70]])
    print(format_table(["suite", "file", "devices", "cases/device", "expectations", "claim"], rows))
    return 0


def _report(args: argparse.Namespace) -> int:
    from .output.report import build_report, default_results  # matplotlib is only imported when a report is made

    paths = args.results or [default_results()]
    report = build_report(paths, args.out)
    print(f"{report.index}: {report.cases} cases ({report.failed} failed, {report.skipped} skipped), "
          f"{len(report.figures)} figures")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .output.compare import compare, format_markdown, format_text

    if args.markdown:
        writable_file(args.markdown, "--markdown")
    rows = compare(args.base, args.head, args.shrink)
    markdown = format_markdown(rows, args.shrink, args.base, args.head)
    if args.markdown:
        try:
            write_bytes_replacing(Path(args.markdown), markdown.encode("utf-8"))
        except OSError as exc:
            raise HarnessError(f"{args.markdown}: --markdown: cannot write the file ({exc.strerror or exc})") from None
    print(markdown if args.format == "markdown" else format_text(rows, args.shrink, args.only_flagged))
    return 1 if any(r.flag == "REGRESSED" for r in rows) else 0


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _jobs(text: str) -> int:
    try:
        return parse_jobs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="theory-harness", description="Run theory suites: "
                                "predictions of optimisation theory checked against measurements.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run suites and write one JSON record per case")
    run.add_argument("paths", nargs="*", help="suite files or folders (default: suites/)")
    run.add_argument("--device", choices=["cpu", "cuda", "all"], default=None,
                     help="device to run on (default: cuda when available, else cpu; all: every device a suite declares)")
    run.add_argument("--out", default="results", help="folder for result records (default: results/)")
    run.add_argument("--threads", type=_threads, default=None,
                     help="torch CPU threads (default: torch's; with --jobs, per worker, default 1)")
    run.add_argument("--jobs", type=_jobs, default=1, metavar="N",
                     help="run cases in N worker processes ('auto': one per CPU); a sweep group's cases run in one "
                          "worker; the records are those a serial run writes (default 1: in this process)")
    run.add_argument("--shard", type=_shard, default=None, metavar="K/M",
                     help="run only shard K of M: a stable subset (by suite id and sweep group, groups never split) "
                          "so that M jobs given the same paths and --device run every case once")
    run.add_argument("--nproc", type=_threads, default=1, metavar="K",
                     help="data parallel: run each case over K processes on this machine, each with 1/K of the "
                          "examples (the same as torchrun --standalone --nproc_per_node K -m harness run ...); "
                          "gloo on the CPU, NCCL on GPUs; rank 0 writes the records")
    run.add_argument("--dist-timeout", type=_seconds, default=dist.DEFAULT_TIMEOUT_S, metavar="S",
                     help="data parallel: seconds a rank waits in a collective for its peers before the run "
                          f"ends with an error naming it (default {dist.DEFAULT_TIMEOUT_S:g})")
    run.set_defaults(func=_run)
    ls = sub.add_parser("list", help="list suites")
    ls.add_argument("paths", nargs="*", help="suite files or folders (default: suites/)")
    ls.set_defaults(func=_list)
    for command in (run, ls):  # plugin modules register their kinds before any suite is read
        command.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                             help="import MODULE first (repeatable): a plugin that registers problems, update "
                                  "rules, measures, predictions, losses or data sets; packages that declare the "
                                  "entry-point group 'theory_harness.plugins' are loaded without it")
    cal = sub.add_parser("calibrate", help="run a suite over extra seeds, nominally and under deliberate errors, and "
                         "print each expectation's spread, false alarms and detections")
    cal.add_argument("suite", help="one suite file")
    cal.add_argument("--seeds", type=_threads, default=10, help="extra seeds, none of the suite's own (default 10)")
    cal.add_argument("--perturb", action="append", default=[], metavar="TARGET=F1,F2",
                     help="a deliberate error (repeatable): optimizer.KEY=F (the rule built with KEY x F, predictions "
                          "nominal), problem.KEY=F, prediction.NAME=F (its value x F), kernel.hessian=F (every HVP x F)")
    cal.add_argument("--device", choices=["cpu", "cuda", "all"], default=None, help="as for run")
    cal.add_argument("--out", default="results/calibration", help="folder for the records (default: results/calibration/)")
    cal.add_argument("--threads", type=_threads, default=None, help="torch CPU threads (default: torch's)")
    cal.add_argument("--plugin", action="append", default=[], metavar="MODULE", help="as for run")
    cal.set_defaults(func=_calibrate)
    rep = sub.add_parser("report", help="turn result records into a static HTML page with a figure per case")
    rep.add_argument("results", nargs="*", help="record files or folders (default: the newest run under results/)")
    rep.add_argument("--out", default="report", help="folder for index.html and figures/ (default: report/)")
    rep.set_defaults(func=_report)
    cmp = sub.add_parser("compare", help="compare every expectation between two folders of result records")
    cmp.add_argument("base", help="records before the change (e.g. the main branch's)")
    cmp.add_argument("head", help="records after the change (e.g. a pull request's)")
    cmp.add_argument("--shrink", type=_fraction, default=0.5,
                     help="flag a passing expectation whose margin shrank by more than this fraction (default 0.5)")
    cmp.add_argument("--format", choices=["text", "markdown"], default="text", help="what to print (default text)")
    cmp.add_argument("--markdown", metavar="FILE", help="also write the Markdown comment to FILE")
    cmp.add_argument("--only-flagged", action="store_true", help="text: print only the flagged rows")
    cmp.set_defaults(func=_compare)
    return p


def main(argv: list[str] | None = None) -> int:
    """``theory-harness`` (``argv``: the arguments, default ``sys.argv[1:]``) -> its exit code:
    0 every expectation held, 1 one failed, 2 bad input (a message naming the file and key)."""
    p = parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors, 0 for --help
        return int(exc.code or 0)
    args.argv = argv  # what each rank of run --nproc runs
    try:
        load_plugins(getattr(args, "plugin", None) or (), entry_points=False)
        return args.func(args)
    except HarnessError as exc:
        print(f"theory-harness: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output or input the checks could not foresee (disk full, removed folder)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"theory-harness: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # never exit 1 (that means "an expectation failed"), never a bare traceback
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        print(f"theory-harness: error: unexpected {type(exc).__name__}: {exc} (at {Path(frame.filename).name}:"
              f"{frame.lineno}; a bug in theory-harness, please report it with the input that caused it)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a run (harness.run.parallel.Interrupted)
        signum = getattr(exc, "signum", 2)
        what = "interrupted" if signum == 2 else f"stopped by {_signal_name(signum)}"
        print(f"theory-harness: {what}; records written so far are complete (any worker processes were stopped)",
              file=sys.stderr)
        return 128 + signum


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
