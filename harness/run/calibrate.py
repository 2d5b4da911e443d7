"""``theory-harness calibrate SUITE``: how much error a suite resolves, and at what false-alarm rate.

A regression test is worth the smallest error it catches without false alarms. ``calibrate``
runs the suite's cases over *extra* seeds (default 10, none of the suite's own), nominally and
under each deliberate error it is told about:

* ``optimizer.KEY=F1,F2`` / ``problem.KEY=F1,...``: the update rule (the problem) is built with
  ``KEY`` times ``F`` while every prediction still binds the nominal value (``optimizer.lr=0.9,1.1``:
  a step size 10 % short and 10 % long);
* ``prediction.NAME=F``: the prediction's value times ``F`` (a wrong formula);
* ``kernel.hessian=F``: every Hessian-vector product of the curvature measures times ``F``.

It prints, per expectation, the nominal statistic's spread (min / median / max over the extra
seeds), its smallest margin, how many nominal runs fail (false alarms) and, per perturbation,
in how many runs the expectation fails (detections); then, per perturbation, in how many runs
at least one expectation fails. The runs are ordinary case records (a perturbed case's id ends
in ``-perturb=optimizer.lr*1.1``); the table is also written as ``calibration.json``
(``theory-harness/calibration/1``) beside them.
"""

from __future__ import annotations

import dataclasses
import math
import statistics as _stats
from dataclasses import dataclass, field, replace

from ..errors import HarnessError
from ..predictions import PREDICTIONS
from ..spec.types import Suite
from .runner import Case, CaseResult, evaluate_sweeps, expand

__all__ = ["NOMINAL", "Calibration", "Spread", "parse_perturbation", "check_perturbation", "extra_seeds", "plan",
           "summarize"]

NOMINAL = "nominal"


@dataclass(frozen=True)
class Spread:
    """One expectation over a calibration: its nominal runs (how many, how many failed: false
    alarms), the statistic's min / median / max and smallest margin over them, and per
    perturbation ``(failed, runs)`` (detections)."""

    expectation: str
    runs: int
    failed: int
    min: float | None
    median: float | None
    max: float | None
    smallest_margin: float | None
    perturbed: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Calibration:
    """A suite's calibration: the seeds it ran, a :class:`Spread` per expectation and, per group
    (``nominal`` and each perturbation), ``(runs with a failure, runs)``. Its JSON form is
    :func:`harness.output.records.calibration_record`."""

    suite: Suite
    seeds: list[int]
    spreads: list[Spread]
    caught: dict[str, tuple[int, int]]


def parse_perturbation(text: str) -> list[tuple[str, float]]:
    """``"optimizer.lr=0.9,1.1"`` -> ``[("optimizer.lr", 0.9), ("optimizer.lr", 1.1)]``."""
    target, sep, factors = text.partition("=")
    if not sep or not target or not factors:
        raise HarnessError(f"--perturb {text!r}: expected TARGET=F1,F2,... such as optimizer.lr=0.9,1.1")
    out = []
    for f in factors.split(","):
        try:
            value = float(f)
        except ValueError:
            raise HarnessError(f"--perturb {text!r}: {f!r} is not a number (a factor such as 1.1)") from None
        if not math.isfinite(value) or value <= 0 or value == 1:
            raise HarnessError(f"--perturb {text!r}: expected factors > 0 other than 1, got {f}")
        out.append((target, value))
    return out


def check_perturbation(suite: Suite, target: str) -> None:
    """Refuse a perturbation the suite cannot take, naming ``--perturb``."""
    kind, _, key = target.partition(".")
    variants = suite.variants or (suite,)
    if kind == "optimizer":
        for v in variants:
            value = v.optimizer_table.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HarnessError(f"--perturb {target}: the suite's optimizer has no number {key!r} "
                                   f"(its keys: {sorted(v.optimizer_table)})")
    elif kind == "problem":
        for v in variants:
            value = dataclasses.asdict(v.problem).get(key) if dataclasses.is_dataclass(v.problem) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HarnessError(f"--perturb {target}: the suite's problem has no number {key!r}")
    elif kind == "prediction":
        if key not in PREDICTIONS:
            raise HarnessError(f"--perturb {target}: {PREDICTIONS.unknown(key)}")
    elif target != "kernel.hessian":
        raise HarnessError(f"--perturb {target}: expected optimizer.KEY, problem.KEY, prediction.NAME or kernel.hessian")


def extra_seeds(suite: Suite, n: int) -> list[int]:
    """``n`` seeds none of the suite's own: the ``n`` integers after its largest seed."""
    if n < 1:
        raise HarnessError(f"--seeds: expected at least 1 extra seed, got {n}")
    start = max(suite.seeds) + 1
    return list(range(start, start + n))


def plan(suite: Suite, seeds: list[int], perturbations: list[tuple[str, float]], devices: list[str] | None) -> list[Case]:
    """The nominal cases over ``seeds``, then the same cases under each perturbation."""
    nominal = [replace(c, seed=s) for c in expand(suite, devices) if c.seed == suite.seeds[0] for s in seeds]
    return nominal + [replace(c, perturbation=(p,)) for p in perturbations for c in nominal]


def _label(case: Case) -> str:
    return NOMINAL if not case.perturbation else ",".join(f"{t}*{f:g}" for t, f in case.perturbation)


def summarize(suite: Suite, results: list[CaseResult]) -> Calibration:
    """Per expectation, the nominal spread and every run's outcome."""
    groups: dict[str, list[CaseResult]] = {}
    for r in results:
        groups.setdefault(_label(r.case), []).append(r)
    verdicts: dict[str, dict[str, list]] = {}  # group -> expectation -> [(passed, measured, margin)]
    caught: dict[str, list[int]] = {}  # group -> [runs with a failure, runs]
    for label, members in groups.items():
        by_name = verdicts.setdefault(label, {})
        for r in members:
            for v in r.verdicts:
                by_name.setdefault(v.name, []).append((v.passed, v.measured, v.margin))
        sweeps = evaluate_sweeps(suite, members)
        for _, group_verdicts in sweeps.values():
            for v in group_verdicts:
                by_name.setdefault(v.name, []).append((v.passed, v.measured, v.margin))
        failed_cases = sum(not r.passed for r in members if r.skipped is None)
        failed_groups = sum(not all(v.passed for v in vs) for _, vs in sweeps.values())
        caught[label] = [failed_cases + failed_groups, sum(r.skipped is None for r in members) + len(sweeps)]
    nominal = verdicts.get(NOMINAL, {})
    spreads = []
    for name in dict.fromkeys([n for g in verdicts.values() for n in g]):
        runs = nominal.get(name, [])
        values = [m for _, m, _ in runs if isinstance(m, (int, float)) and math.isfinite(m)]
        margins = [g for _, _, g in runs if isinstance(g, (int, float)) and not math.isnan(g)]
        spreads.append(Spread(
            expectation=name, runs=len(runs), failed=sum(not p for p, _, _ in runs),
            min=min(values) if values else None, median=_stats.median(values) if values else None,
            max=max(values) if values else None, smallest_margin=min(margins) if margins else None,
            perturbed={label: (sum(not p for p, _, _ in g.get(name, [])), len(g.get(name, [])))
                       for label, g in verdicts.items() if label != NOMINAL}))
    return Calibration(suite, sorted({r.case.seed for r in results}), spreads,
                       {label: (k, n) for label, (k, n) in caught.items()})
