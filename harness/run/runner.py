"""Expanding suites into cases and running them.

A case is one sweep point x seed x device. Running it builds the problem, the optimiser and
the measures, iterates ``theta_{t+1} = step(theta_t)`` for ``run.steps`` steps, records every
due measure at ``theta_t`` (before the update), stops when the run diverges (see
:func:`divergence`), evaluates every expectation and returns a :class:`CaseResult`, whose
``record()`` is the JSON result record (``docs/result-schema.md``).

A measure that fails numerically (a failed eigensolve, an overflow) is recorded as NaN with the
reason in its ``aux["reason"]``; a case that raises anything else is an error that keeps every
measurement taken before it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from .environment import environment
from ..errors import CaseSetupError, UnsupportedError
from .events import EventWatcher, event_step
from .distributed import DistributedFailure, current_world, shard_problem
from .expectations import Verdict, evaluate, evaluate_sweep, failed
from .series import Trajectory, prediction_series
from ..measures import Measurement, StepContext, forward_only_loss, uses_hessian_graph
from ..spec.types import Suite
from ..training.optimizers import DirectionRule, in_absolute_units, init_state, roles, step_size_unit
from ..spec.reader import update_rule

__all__ = ["Case", "CaseResult", "expand", "run_case", "cuda_available", "default_device", "sweep_groups",
           "evaluate_sweeps", "group_key", "divergence", "EXPLOSION_FACTOR"]

# A finite loss above EXPLOSION_FACTOR * max(|L_0|, 1) is a divergence (docs/suite-format.md, "A run
# that diverges"). An edge-of-stability catapult raises the loss 10-1000-fold for a few steps; 1e12
# is nine orders of magnitude beyond that, and far below overflow in float32 (3.4e38) for any
# initial loss under 1e26, so what the run records up to there is still computable.
EXPLOSION_FACTOR = 1e12

# what a measure raises when its numbers cannot be computed: recorded as NaN, not a crash
_NUMERICAL = (torch.linalg.LinAlgError, ArithmeticError)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    return torch.cuda.is_available()


def default_device() -> str:
    """CUDA when available, else CPU."""
    return "cuda" if cuda_available() else "cpu"


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Case:
    """One sweep point x seed x device of a suite."""

    suite: Suite
    point: tuple[tuple[str, Any], ...]
    seed: int
    device: str
    # a deliberate error for calibration (harness.run.calibrate): ((target, factor), ...) with target
    # "optimizer.KEY" / "problem.KEY" (the value the update rule or problem is built with, times
    # factor), "prediction.NAME" (the prediction's value, times factor) or "kernel.hessian" (every
    # Hessian-vector product, times factor). Predictions still bind the nominal values.
    perturbation: tuple[tuple[str, float], ...] = ()

    @property
    def dtype(self) -> str:
        return self.suite.dtypes[self.device]

    @property
    def id(self) -> str:
        """``depth=3-lr=0.01-seed=0-cpu``: the sweep axes the suite shows in ids, seed, device
        (and ``-perturb=optimizer.lr*1.1`` for a calibration's perturbed run)."""
        parts = [f"{k}={_fmt(v)}" for k, v in self.point if k in self.suite.id_labels]
        parts += [f"seed={self.seed}", self.device]
        parts += [f"perturb={t}*{f:g}" for t, f in self.perturbation]
        return "-".join(parts)

    @property
    def hyper(self) -> dict[str, Any]:
        """The optimiser's hyper-parameters at this point (fixed ones and swept ones)."""
        return dict(self.suite.optimizer_table)

    @property
    def bindings(self) -> dict[str, Any]:
        """What a prediction's arguments bind to by name: ``steps`` (the run's step budget),
        ``seed``, the problem's options (defaults included), then the optimiser's hyper-parameters
        (``step``, the measurement's own step, is bound per measurement)."""
        return {"steps": self.suite.steps, "seed": self.seed, **dataclasses.asdict(self.suite.problem), **self.hyper}


def expand(suite: Suite, devices: list[str] | None = None) -> list[Case]:
    """Every case of ``suite`` on ``devices`` (default: the suite's own devices); each case holds
    the variant of its sweep point (:meth:`~harness.spec.reader.Suite.at`)."""
    devs = [d for d in suite.devices if devices is None or d in devices]
    return [Case(suite.at(point), tuple(point.items()), seed, dev)
            for dev in devs for point in suite.sweep_points() for seed in suite.seeds]


@dataclass
class CaseResult:
    """Trajectories, verdicts and provenance of one case."""

    case: Case
    trajectories: dict[str, Trajectory] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    diverged_at: int | None = None
    skipped: str | None = None
    error: str | None = None
    invalid: str | None = None  # the case cannot run as its suite asks (``file: key: why``): exit 2
    wall_time_s: float = 0.0
    error_step: int | None = None  # the step being run when the case raised (None: before or after the loop)
    environment: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, dict] = field(default_factory=dict)
    events: dict[str, int | None] = field(default_factory=dict)
    bindings: dict[str, Any] = field(default_factory=dict)  # what its predictions bound to (set by the run)

    @property
    def passed(self) -> bool:
        return self.skipped is None and self.error is None and all(v.passed for v in self.verdicts)

    @property
    def last_step(self) -> int:
        """The run's last step: ``run.steps``, or earlier when it stopped on an event."""
        return self.info.get("last_step", self.case.suite.steps)

    @property
    def divergence_message(self) -> str | None:
        if self.diverged_at is None:
            return None
        why = self.info.get("divergence", "non-finite loss or parameters")
        return f"the run diverged at step {self.diverged_at} (loss {self.info['loss_at_divergence']:.4g}; {why})"

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return "skipped"
        return "passed" if self.passed else "failed"


@contextlib.contextmanager
def precision(device: str, matmul_precision: str) -> Iterator[None]:
    """float32 matmul precision for the run ("highest": TF32 off), restored afterwards."""
    old = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
           torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision(matmul_precision)
    allow = matmul_precision != "highest"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old[0])
        torch.backends.cuda.matmul.allow_tf32 = old[1]
        torch.backends.cudnn.allow_tf32 = old[2]


def _finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def divergence(loss: float, theta: torch.Tensor, grad: torch.Tensor | None,
               loss0: float | None) -> tuple[str, bool] | None:
    """``(why, finite)`` when the run has diverged at this iterate, else None.

    It has when its loss or parameters are not finite, or the gradient the update would use is
    not (``grad``: when this step already computed it), or the loss, still finite, exceeds
    ``EXPLOSION_FACTOR * max(|L_0|, 1)`` (``loss0``: the loss at step 0): the run is exploding,
    and what it would compute next means nothing. ``finite``: the iterate can still be measured
    (only in the last case)."""
    if not math.isfinite(loss):
        return "non-finite loss or parameters", False
    # one synchronisation for both checks (a tiny model's step costs a few of them)
    theta_ok, grad_ok = (_finite(theta), True) if grad is None else \
        torch.stack([torch.isfinite(theta).all(), torch.isfinite(grad).all()]).tolist()
    if not theta_ok:
        return "non-finite loss or parameters", False
    if not grad_ok:
        return "non-finite gradient", False
    bound = EXPLOSION_FACTOR * max(abs(loss0), 1.0) if loss0 is not None else math.inf
    if abs(loss) > bound:
        return f"exploding: |loss| > {EXPLOSION_FACTOR:g} x max(|L_0|, 1) = {bound:.4g}", True
    return None


def run_case(case: Case, progress: Callable[[int, int], None] | None = None) -> CaseResult:
    """Run one case; a case on an unavailable device comes back skipped, with the reason."""
    suite = case.suite
    result = CaseResult(case)
    if case.device == "cuda" and not cuda_available():
        result.skipped = "CUDA is not available on this machine"
        return result
    start = time.perf_counter()
    try:
        with perturbed_kernels(case.perturbation):
            _simulate(case, result, progress)
    except DistributedFailure:  # a peer process died or hangs: the run ends, no case is judged on it
        raise
    except Exception as exc:
        world = current_world()
        if world is None:
            _case_error(result, exc)
        else:  # the other ranks may be inside a collective of this case: they cannot go on in step with this one
            at = "" if result.error_step is None else f" at step {result.error_step}"
            raise DistributedFailure(f"rank {world.rank} of {world.size}: {suite.id} {case.id} raised{at} "
                                     f"{type(exc).__name__}: {exc}; a data-parallel run stops at its first error") from exc
    result.wall_time_s = time.perf_counter() - start
    return result


def _case_error(result: CaseResult, exc: Exception) -> None:
    """``exc``, raised inside the case, as the case's outcome: bad input (:class:`CaseSetupError`)
    or the failure of every expectation that applies."""
    suite, case = result.case.suite, result.case
    if isinstance(exc, CaseSetupError):  # the suite cannot run as written: bad input, not a failed claim
        result.invalid = result.info["invalid"] = str(exc)
        result.error = f"{type(exc).__name__}: {exc}"
        result.verdicts = []
        return
    # a crash inside a case is that case's failure, not the run's
    result.error = f"{type(exc).__name__}: {exc}"
    at = "" if result.error_step is None else f" at step {result.error_step}"
    if result.error_step is not None:
        result.info["error_step"] = result.error_step
    result.verdicts = [failed(e, f"the case raised{at} {result.error}") for e in suite.expectations
                       if e.applies(dict(case.point))]


def _simulate(case: Case, result: CaseResult, progress) -> None:
    suite = case.suite
    dtype = getattr(torch, case.dtype)
    device = torch.device(case.device)
    with precision(case.device, suite.matmul_precision):
        result.environment = environment(case.device, case.dtype, suite.file, suite.sha256)
        spec = _perturbed(suite.problem, case.perturbation, "problem")
        problem = _set_up(suite, "problem", lambda: _data_parallel(spec.build(case.seed, dtype, device), suite.file))
        stated = _set_up(suite, "optimizer", lambda: _perturbed_optimizer(suite, case.perturbation))
        unit = _set_up(suite, "optimizer", lambda: step_size_unit(stated, problem))
        optimizer = in_absolute_units(stated, unit)
        result.bindings = bindings = _bindings(case, optimizer, unit)
        result.info = {"n_params": problem.n_params, **({"step_size_unit": unit} if unit != 1.0 else {})}
        memories: dict[str, dict] = {name: {} for name in suite.measures}
        traj = {name: Trajectory(steps=[], values=[], aux={}) for name in suite.measures}
        result.trajectories = traj  # filled in place: a case that raises keeps what it measured
        plain = [s for s in suite.measures.values() if s.from_event is None]
        gated = [s for s in suite.measures.values() if s.from_event is not None]
        stop = suite.events.get(suite.stop_event) if suite.stop_event else None
        watcher = EventWatcher(suite.events, {s.from_event for s in gated} | ({stop.name} if stop else set()), bindings)
        fired = watcher.fired
        theta = problem.theta0
        state = _set_up(suite, "optimizer", lambda: init_state(optimizer, theta, problem))
        last = suite.steps
        loss0 = None
        graph_users = [spec for spec in (*plain, *gated) if uses_hessian_graph(spec.measure)]  # once, not per step
        direction_rule, forward_only = isinstance(optimizer, DirectionRule), forward_only_loss(optimizer)
        for step in range(suite.steps + 1):
            result.error_step = step
            hessian_due = any(spec.due(step, last, fired) for spec in graph_users)
            ctx = StepContext(step, theta, problem, optimizer, state, hessian_due, forward_only, bindings,
                              suite.optimizer_kind)
            loss = ctx.loss
            diverged = divergence(loss, theta, ctx.computed_grad, loss0)
            if diverged is not None:
                result.diverged_at = step
                result.info["loss_at_divergence"] = loss
                result.info["divergence"], finite = diverged
                if not finite:
                    break  # nothing is measured at a non-finite iterate
                last = step  # an exploding but finite iterate is the run's last step, measured as one
            loss0 = loss if loss0 is None else loss0
            _record(plain, step, last, fired, ctx, memories, traj, suite.file)
            watcher.update(step, traj)
            _record(gated, step, last, fired, ctx, memories, traj, suite.file)
            watcher.update(step, traj)
            if stop is not None and last == suite.steps and stop.name in fired:
                last = min(fired[stop.name] + suite.stop_after, suite.steps)
            if progress is not None and step % 50 == 0:
                progress(step, last)
            if step == last:
                break
            if direction_rule:  # the direction its measures saw, computed once
                theta, state = optimizer.apply(theta, state, ctx.direction())
            else:
                theta, state = optimizer.step(theta, state, ctx.value_and_grad)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    result.error_step = None
    result.info["last_step"] = last if result.diverged_at is None else result.diverged_at
    asserted = [e for e in suite.expectations if e.applies(dict(case.point))]
    result.verdicts = [evaluate(suite, e, traj, bindings, result.divergence_message, case.device,
                                result.last_step) for e in asserted]
    result.predictions = prediction_series([*asserted, *suite.overlays], traj, bindings)
    result.events = {name: event_step(ev, traj, bindings) for name, ev in suite.events.items()}


def _data_parallel(problem: Any, file: str) -> Any:
    """``problem`` itself, or its shard in a data-parallel run (:mod:`harness.run.distributed`)."""
    world = current_world()
    return problem if world is None else shard_problem(problem, world, file)


def _perturbed(spec: Any, perturbation: tuple, section: str) -> Any:
    """``spec`` (a problem's frozen options) with ``section.KEY`` perturbations applied."""
    changes = {t.split(".", 1)[1]: getattr(spec, t.split(".", 1)[1]) * f for t, f in perturbation
               if t.startswith(section + ".")}
    return dataclasses.replace(spec, **changes) if changes else spec


def _bindings(case: Case, rule: Any, unit: float) -> dict[str, Any]:
    """What the case's predictions bind to: :attr:`Case.bindings` with the roles
    (:func:`harness.training.optimizers.roles`) of the rule that runs, in the units it runs in. Under a
    calibration's ``optimizer.KEY`` perturbation, the roles of the *nominal* rule: the perturbed
    rule steps, the predictions keep the values the suite states."""
    if any(t.startswith("optimizer.") for t, _ in case.perturbation):
        rule = in_absolute_units(update_rule(case.suite), unit)
    return {**case.bindings, **roles(rule)}


def _perturbed_optimizer(suite: Suite, perturbation: tuple) -> Any:
    """The variant's update rule, built with its ``optimizer.KEY`` perturbations applied."""
    table = dict(suite.optimizer_table)
    for target, factor in perturbation:
        if target.startswith("optimizer."):
            key = target.split(".", 1)[1]
            table[key] = table[key] * factor
    return update_rule(suite, table)


@contextlib.contextmanager
def perturbed_kernels(perturbation: tuple) -> Iterator[None]:
    """``prediction.NAME`` and ``kernel.hessian`` perturbations in force for one case: the
    prediction's value, every Hessian-vector product of the curvature measures, times the factor."""
    from .. import measures
    from ..measures import curvature as curvature_measures
    from ..kernels.operators import LinearOperator
    from ..predictions import PREDICTIONS

    saved_predictions, saved_hessian = {}, None
    try:
        for target, factor in perturbation:
            kind, _, name = target.partition(".")
            if kind == "prediction":
                fn = saved_predictions.setdefault(name, PREDICTIONS._items[name])
                scaled = functools.wraps(fn)(lambda *a, _fn=fn, _f=factor, **k: _f * _fn(*a, **k))
                PREDICTIONS._items[name] = scaled
            elif kind == "kernel" and name == "hessian":
                real = saved_hessian = saved_hessian or curvature_measures.hessian_operator

                def scaled_hessian(obj, theta, strategy="double_backward_reused", _real=real, _f=factor):
                    op = _real(obj, theta, strategy)
                    scaled = LinearOperator(lambda v: _f * op._matvec(v), op.dim, op.dtype, op.device, op.name)
                    scaled.loss, scaled.gradient = op.loss, op.gradient  # the step reuses them: unscaled
                    return scaled
                curvature_measures.hessian_operator = measures.hessian_operator = scaled_hessian
        yield
    finally:
        for name, fn in saved_predictions.items():
            PREDICTIONS._items[name] = fn
        if saved_hessian is not None:
            curvature_measures.hessian_operator = measures.hessian_operator = saved_hessian


def _set_up(suite: Suite, key: str, build: Callable[[], Any]) -> Any:
    """``build()``, with any exception it raises turned into a :class:`CaseSetupError` naming the
    suite file and ``key``: a problem or update rule that cannot be built as the suite asks (a
    rule on a problem it does not fit, a user model whose constructor raises) is bad input."""
    try:
        return build()
    except Exception as exc:
        raise CaseSetupError(suite.file, key, f"cannot be set up for this case: {type(exc).__name__}: {exc}") from exc


def _record(specs, step: int, last: int, fired: dict, ctx: StepContext, memories: dict, traj: dict,
            file: str) -> None:
    """Record every measure of ``specs`` that is due at ``step``, with its auxiliary columns."""
    for spec in specs:
        if not spec.due(step, last, fired):
            continue
        try:
            m = spec.measure(ctx, memories[spec.name])
        except UnsupportedError as exc:  # the measure needs what this problem or rule lacks
            raise CaseSetupError(file, f"measures.{spec.name}", str(exc)) from exc
        except _NUMERICAL as exc:  # e.g. an eigensolve that failed on an exploding iterate
            m = Measurement(math.nan, {"reason": f"{type(exc).__name__}: {exc}"})
        t = traj[spec.name]
        t["steps"].append(step)
        t["values"].append(m.value)
        for key, val in m.aux.items():
            t["aux"].setdefault(key, [None] * (len(t["steps"]) - 1)).append(val)
        for col in t["aux"].values():
            if len(col) < len(t["steps"]):
                col.append(None)


def sweep_groups(suite: Suite, results: list[CaseResult], axis: str) -> dict[str, list[tuple[Any, CaseResult]]]:
    """Results grouped by everything but sweep axis ``axis``: ``{group id: [(axis value, result)]}``."""
    groups: dict[str, list[tuple[Any, CaseResult]]] = {}
    own = (suite, *suite.variants)  # a case holds its sweep point's variant
    for r in results:
        if not any(r.case.suite is v for v in own) or r.skipped is not None or axis not in dict(r.case.point):
            continue
        groups.setdefault(group_key(r.case, axis), []).append((dict(r.case.point)[axis], r))
    return groups


def group_key(case: Case, axis: str) -> str:
    """The id of the sweep group of ``case`` along ``axis``: every other coordinate of the case
    (with ``sweep = "zip"`` the axes move together, so none of them)."""
    rest = [] if case.suite.zip_sweep else [f"{k}={_fmt(v)}" for k, v in case.point if k != axis]
    return "-".join([f"across={axis}", *rest, f"seed={case.seed}", case.device])


def evaluate_sweeps(suite: Suite, results: list[CaseResult]) -> dict[str, tuple[list[CaseResult], list[Verdict]]]:
    """Every sweep expectation of ``suite`` on every group of ``results``:
    ``{group id: (the group's results, its verdicts)}``."""
    out: dict[str, tuple[list[CaseResult], list[Verdict]]] = {}
    for e in suite.sweep_expectations:
        for key, group in sweep_groups(suite, results, e.across).items():
            members, verdicts = out.setdefault(key, ([r for _, r in group], []))
            group = [(v, r) for v, r in group if e.applies(dict(r.case.point))]  # its where, if any
            if not group:
                continue
            verdicts.append(evaluate_sweep(suite, e, group, group[0][1].case.device))
    return out
