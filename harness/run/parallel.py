"""``theory-harness run --jobs N`` and ``--shard K/M``: cases in worker processes, and stable shards.

**Units.** A sweep expectation reads every case of its sweep group, so the cases of a group (and
of groups that share a case, when a suite sweeps along two axes) form one *unit*
(:func:`units`): a unit is never split between shards, and under ``--jobs`` it runs in one
worker, so its results are complete before the sweep is evaluated. A case in no sweep group is a
unit of its own.

**Shards** (:func:`shard_of`, :func:`select_shard`). The units are sorted by their key (suite id,
device, smallest case id) and dealt out in turn: the unit of rank ``r`` goes to shard ``r mod M``.
The partition depends on the set of cases selected -- not on the order of the paths, nor on the
machine -- so the ``M`` jobs of a CI matrix given the same paths and ``--device`` run every case
exactly once; the cases of a suite (its seeds and sweep points, which cost alike) land on
different shards, so the shards hold about as many cases (and as much work) each.

**Workers** (:func:`run_parallel`). ``N`` processes started with the ``spawn`` method (never
``fork``: the parent has imported torch, whose thread pools do not survive a fork), each with
``threads`` torch threads (one by default). The parent queues the units in the serial order;
an idle worker takes the next one, loads the unit's suite file itself (after the same plugins;
the file's sha256 must be the parent's), finds each case by id among ``expand(suite)`` -- so it
runs the case's own sweep-point variant, ``suite.at(point)`` -- and sends back each case's result
as it finishes; the parent pairs it with its own case object (the one ``runner.sweep_groups``
knows by identity). The parent alone writes records, so a run with workers writes the same
files, with the same content, as a serial run (wall times, run id and the environment's pid aside; ``torch_threads`` is the
workers' thread count). Workers ignore Ctrl-C; on Ctrl-C or SIGTERM the parent terminates them,
and a worker that dies (a segfault, the OOM killer) ends the run with a message naming it and
its case. A worker whose parent has gone exits on its own at the next 50 steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import shutil
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator, Sequence

from ..errors import HarnessError
from .runner import Case, CaseResult, group_key

__all__ = ["units", "unit_key", "shard_of", "select_shard", "parse_shard", "parse_jobs", "run_parallel",
           "Interrupted", "interrupt_on_signals", "ParallelProgress"]


# ----------------------------------------------------------------------------------------------
# the partition (pure functions)

def units(cases: Sequence[Case]) -> list[list[int]]:
    """The indices of ``cases`` grouped into units: the connected components of "in one sweep
    group" (over every sweep expectation of the case's suite); a case in none is alone. Units
    come in the order of their first case, each one's indices ascending."""
    parent = list(range(len(cases)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}  # (suite id, sweep group) -> its first case
    for i, case in enumerate(cases):
        # case.suite is the case's sweep-point variant: every variant holds the suite's sweep
        # expectations (harness.spec.reader checks they read the same). A case whose point lacks the
        # axis (a [[sweep]] block without it) is in no group along it (runner.sweep_groups).
        for e in case.suite.sweep_expectations:
            if e.across not in dict(case.point):
                continue
            j = first.setdefault((case.suite.id, group_key(case, e.across)), i)
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    out: dict[int, list[int]] = {}
    for i in range(len(cases)):
        out.setdefault(find(i), []).append(i)
    return list(out.values())


def unit_key(cases: Sequence[Case], unit: Sequence[int]) -> tuple[str, str, str]:
    """``(suite id, device, smallest case id)``: what a unit's shard is computed from."""
    c = cases[unit[0]]
    return c.suite.id, c.device, min(cases[i].id for i in unit)


def shard_of(cases: Sequence[Case], count: int) -> list[int]:
    """The shard (``0 .. count-1``) of every case; the cases of a unit share one (module doc)."""
    if count < 1:
        raise ValueError(f"shard count must be >= 1, got {count}")
    shard = [-1] * len(cases)
    ranked = sorted(units(cases), key=lambda unit: unit_key(cases, unit))
    for rank, unit in enumerate(ranked):
        for i in unit:
            shard[i] = rank % count
    return shard


def select_shard(cases: Sequence[Case], index: int, count: int) -> list[int]:
    """The indices (ascending) of the cases in shard ``index`` of ``count`` (1-based, as on the
    command line: ``--shard index/count``)."""
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: expected 1 <= K <= M")
    return [i for i, s in enumerate(shard_of(cases, count)) if s == index - 1]


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/M"`` -> ``(K, M)`` with ``1 <= K <= M``; a :class:`ValueError` saying what is wrong."""
    k, sep, m = str(text).strip().partition("/")
    try:
        if not sep:
            raise ValueError
        index, count = int(k), int(m)
    except ValueError:
        raise ValueError(f"expected K/M (shard K of M, e.g. 2/4), got {text!r}") from None
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"expected K/M with 1 <= K <= M, got {text!r}")
    return index, count


def parse_jobs(text: str) -> int:
    """``"N"`` (N >= 1) or ``"auto"`` (the CPUs this process may use)."""
    if str(text).strip() == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number >= 1 or 'auto', got {text!r}") from None
    if value < 1:
        raise ValueError(f"expected a whole number >= 1 or 'auto', got {text!r}")
    return value


# ----------------------------------------------------------------------------------------------
# interrupts

class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run; ``signum`` says which (the exit status is 128 + it)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = ""):
        super().__init__(message)
        self.signum = int(signum)


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``) raises :class:`Interrupted` like Ctrl-C does, so the
    run stops its workers and says so instead of vanishing. Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_(signum, frame):
        raise Interrupted(signum)

    old = signal.signal(signal.SIGTERM, raise_)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# ----------------------------------------------------------------------------------------------
# progress

class ParallelProgress:
    """One self-overwriting status line on a terminal, nothing otherwise: cases done of the
    total, then what each worker runs and at which step, cut to the terminal's width."""

    def __init__(self, total: int, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.total, self.done_count = total, 0
        self.on = self.stream.isatty()
        self.running: dict[int, list] = {}  # worker -> [label, step, steps]

    def start(self, worker: int, label: str) -> None:
        self.running[worker] = [label, 0, 1]
        self._draw()

    def step(self, worker: int, step: int, steps: int) -> None:
        if worker in self.running:
            self.running[worker][1:] = [step, steps]
            self._draw()

    def finished(self, worker: int) -> None:
        self.running.pop(worker, None)
        self.done_count += 1
        self._draw()

    def _draw(self) -> None:
        if not self.on:
            return
        workers = [f"w{w + 1}: {label} {step}/{steps}" for w, (label, step, steps) in sorted(self.running.items())]
        width = shutil.get_terminal_size((100, 20)).columns - 1
        line = f"[{self.done_count}/{self.total} done] " + " | ".join(workers)
        self.stream.write("\r\033[K" + (line if len(line) <= width else line[:max(width - 1, 0)] + "…"))
        self.stream.flush()

    def done(self) -> None:
        if self.on:
            self.stream.write("\r\033[K")
            self.stream.flush()


# ----------------------------------------------------------------------------------------------
# workers

@dataclasses.dataclass(frozen=True)
class _Task:
    index: int        # the case's index in the parent's list
    file: str         # its suite file, as the parent read it
    sha256: str       # the file's hash when the parent read it
    expanded_id: str  # the id of the case of expand(load_suite(file)) it is
    case_id: str      # its own id (the same unless extra says otherwise)
    extra: tuple = ()  # ((field, value), ...): Case fields beyond suite, point, seed, device


_CORE = {"suite", "point", "seed", "device"}


def _task(index: int, case: Case) -> _Task:
    """What a worker needs to find ``case`` again in the suite file it loads itself: the case of
    :func:`~harness.run.runner.expand` with its id (which holds the variant of its sweep point,
    ``suite.at(point)``), and any other field of the parent's case."""
    extra = tuple((f.name, getattr(case, f.name)) for f in dataclasses.fields(case) if f.name not in _CORE)
    plain = Case(case.suite, case.point, case.seed, case.device)
    return _Task(index, case.suite.file, case.suite.sha256, plain.id, case.id, extra)


def _find(cases: dict[str, Case], task: _Task) -> Case:
    """The worker's own case for ``task`` (``cases``: ``expand(load_suite(task.file))`` by id)."""
    case = cases.get(task.expanded_id)
    if case is not None and task.extra:
        case = dataclasses.replace(case, **dict(task.extra))
    if case is None or case.id != task.case_id:
        raise HarnessError(f"{task.file}: a worker does not find the case {task.case_id} in the suite it read "
                           "(a bug in theory-harness, please report it)")
    return case


_RESULT_FIELDS = [f.name for f in dataclasses.fields(CaseResult) if f.name != "case"]


def _worker(number: int, threads: int, plugins: list[str], conn) -> None:
    """A worker process. It says ``("ready",)``, and the parent answers with a unit (a list of
    :class:`_Task`) or ``None`` (stop). For each case it sends ``("start", index)``, ``("step",
    step, steps)`` every 50 steps and ``("done", index, pickled result fields)``; ``("fatal",
    message)`` when it cannot go on. Every send is synchronous (a pipe of its own, no feeder
    thread), so what it sent before dying reaches the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    import multiprocessing

    parent = multiprocessing.parent_process()

    def send(*msg) -> None:
        try:
            conn.send(msg)
        except OSError:  # the parent is gone
            raise SystemExit(1) from None

    try:
        import torch

        from ..registry import load_plugins
        from .runner import expand, run_case
        from ..spec.reader import load_suite

        torch.set_num_threads(threads)
        load_plugins(plugins, entry_points=False)
        suites: dict[str, dict[str, Case]] = {}
        while True:
            send("ready")
            while not conn.poll(1.0):
                if parent is not None and not parent.is_alive():
                    return
            unit = conn.recv()
            if unit is None:
                return
            for task in unit:
                if task.file not in suites:
                    suite = load_suite(task.file)
                    if suite.sha256 != task.sha256:
                        raise HarnessError(f"{task.file}: the suite file changed while the run was going on "
                                           "(its sha256 differs from the one read at the start); run again")
                    suites[task.file] = {c.id: c for c in expand(suite)}  # every device the suite declares
                case = _find(suites[task.file], task)
                send("start", task.index)

                def progress(step: int, steps: int) -> None:
                    if parent is not None and not parent.is_alive():
                        raise SystemExit(1)  # nobody is waiting for this case any more
                    send("step", step, steps)

                result = run_case(case, progress)
                send("done", task.index, pickle.dumps({name: getattr(result, name) for name in _RESULT_FIELDS}))
    except (EOFError, SystemExit):
        return  # the parent is gone: nothing to report to
    except HarnessError as exc:
        send("fatal", str(exc))
    except Exception as exc:  # noqa: BLE001 - reported by the parent as one line
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        send("fatal", f"worker {number + 1}: unexpected {type(exc).__name__}: {exc} (at "
                      f"{os.path.basename(frame.filename)}:{frame.lineno})")


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def run_parallel(cases: Sequence[Case], unit_list: Sequence[Sequence[int]], jobs: int, threads: int,
                 plugins: Sequence[str], on_result: Callable[[int, CaseResult], None],
                 progress: ParallelProgress | None = None, start_method: str = "spawn") -> None:
    """Run ``cases`` in ``min(jobs, len(unit_list))`` worker processes, each unit of ``unit_list``
    in one worker, the units handed out in their order to whichever worker is free;
    ``on_result(index, result)`` is called in this process as each case finishes (in the order
    they finish). Returns when every case has a result. A worker that cannot load its suite, or
    that dies, is a :class:`HarnessError` naming it (and its case); Ctrl-C / SIGTERM propagate as
    :class:`KeyboardInterrupt`. Either way every worker has stopped when this returns."""
    import multiprocessing
    from multiprocessing.connection import wait

    if start_method == "fork":
        raise ValueError("workers are never forked (torch's threads do not survive a fork): use spawn or forkserver")
    ctx = multiprocessing.get_context(start_method)
    n = max(1, min(jobs, len(unit_list)))
    pending = [[_task(i, cases[i]) for i in unit] for unit in unit_list]
    pending.reverse()  # popped from the end: in their order
    conns, theirs, procs = [], [], []
    for w in range(n):
        a, b = ctx.Pipe(duplex=True)
        conns.append(a)
        theirs.append(b)  # the worker's end: closed here once it has started
        procs.append(ctx.Process(target=_worker, args=(w, threads, list(plugins), b),
                                 name=f"theory-harness-worker-{w + 1}"))  # not daemonic: user code may start
        # processes of its own; _stop below ends every worker whatever happens here
    owed: dict[int, set[int]] = {w: set() for w in range(n)}  # worker -> cases of its unit not yet done
    running: dict[int, int] = {}  # worker -> the case it said it started
    remaining = sum(len(u) for u in unit_list)
    masked = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()

    def died(w: int) -> HarnessError:
        case = running.get(w, min(owed[w]) if owed[w] else None)
        what = f"while running {cases[case].suite.id} {cases[case].id}" if case is not None else "between cases"
        return HarnessError(f"worker {w + 1} died ({_exit_reason(procs[w].exitcode)}) {what}; the records of the "
                            "cases that finished are written, the run is incomplete")

    def handle(w: int, msg: tuple) -> None:
        nonlocal remaining
        kind = msg[0]
        if kind == "ready":
            if owed[w]:
                raise HarnessError(f"worker {w + 1} asked for more work with {len(owed[w])} case(s) of its unit "
                                   "not reported (a bug in theory-harness, please report it)")
            unit = pending.pop() if pending else None
            owed[w] = {t.index for t in unit} if unit else set()
            try:
                conns[w].send(unit)
            except OSError:
                pass  # it has died: its sentinel says so next
        elif kind == "start":
            running[w] = msg[1]
            if progress is not None:
                c = cases[msg[1]]
                progress.start(w, f"{c.suite.id} {c.id}")
        elif kind == "step":
            if progress is not None:
                progress.step(w, msg[1], msg[2])
        elif kind == "done":
            index = msg[1]
            running.pop(w, None)
            owed[w].discard(index)
            result = CaseResult(cases[index], **pickle.loads(msg[2]))
            remaining -= 1
            if progress is not None:
                progress.finished(w)
            on_result(index, result)
        elif kind == "fatal":
            raise HarnessError(msg[1])

    try:
        if masked:  # workers start with Ctrl-C blocked (they ignore it once they run); the parent gets it
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for p, b in zip(procs, theirs):
                p.start()
                b.close()
        finally:
            if masked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        live = set(range(n))
        while remaining:
            if not live:
                raise HarnessError(f"every worker exited with {remaining} case(s) not run (a bug in "
                                   "theory-harness, please report it)")
            ready = wait([conns[w] for w in live] + [procs[w].sentinel for w in live])
            for w in sorted(live):
                if conns[w] in ready or procs[w].sentinel in ready:
                    while True:  # everything it sent, also when it has just died
                        try:
                            if not conns[w].poll():
                                break
                            msg = conns[w].recv()
                        except (EOFError, OSError):
                            break
                        handle(w, msg)
                    if procs[w].sentinel in ready or not procs[w].is_alive():
                        procs[w].join()
                        if procs[w].exitcode != 0 or owed[w]:
                            raise died(w)
                        live.discard(w)
        for c in conns:  # done: the workers waiting for another unit leave on their own
            try:
                c.send(None)
            except OSError:
                pass
        for p in procs:
            p.join(timeout=2)
    finally:
        _stop(procs, conns + theirs)


def _stop(procs, conns) -> None:
    """Terminate the workers still alive, wait for them (SIGKILL after 5 s), close the pipes."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        if p.pid is not None:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    for c in conns:
        c.close()
