"""Figures of result records: what was measured against what the theory predicts.

One figure per case (:func:`case_figure`): a panel per measure that an expectation reads,
over the steps, with

* the measured trajectory;
* every prediction on that measure evaluated at each of its steps (``2/eta``; the SAM edge
  ``(||g||/2 rho)(sqrt(1 + 8 rho/(eta ||g||)) - 1)`` moving with the measured ``||g||``; the
  effective rank ``r(A_r)`` of a projection of the target; the theorem bound
  ``(1 - mu_min/2)^t`` and the linearised loss curve), as recorded in ``predictions``;
* each expectation's window shaded (green: it passed; red: it failed) and numbered as in the
  caption's table;
* the accepted region of a statistic that is a value of the series (median, p90, max, ...)
  drawn in the measure's own units: ``[lo, hi] * prediction`` for a ratio, ``prediction +
  [lo, hi]`` for a difference;
* for a hitting time (``first_step_above``) the level crossed and the predicted step with
  its tolerance (hatched); for ``reaches`` the level and the deadline;
* a log scale when the measure spans more than three decades (a loss against its bound).

A ``spearman`` statistic also gets a scatter panel of the two measures (sharpness against the
Jacobian norm), the window's points coloured by step. A sweep group gets
:func:`sweep_figure`: the per-case statistic against the swept axis.

Only matplotlib's object API is used (no pyplot, no global backend state); figures come back
as PNG bytes.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["case_figure", "sweep_figure", "panel_measures", "expectation_numbers", "VALUE_STATISTICS"]

#: Statistics that are a value of the (compared) series, so their accepted region can be
#: drawn in the measure's units.
VALUE_STATISTICS = re.compile(r"^(median|mean|min|max|first|last|max_abs|p\d+(\.\d+)?)$")
_SPEARMAN = re.compile(r"^spearman\(with (?P<other>.+)\)$")
_PASS, _FAIL = "#2e7d32", "#c62828"


def _array(values: list) -> np.ndarray:
    return np.array([math.nan if v is None or isinstance(v, str) else float(v) for v in values], dtype=np.float64)


def panel_measures(record: dict) -> list[str]:
    """The measures a case's figure has a panel for: those its expectations and overlays read,
    in the order first named (every recorded measure when nothing names one)."""
    traj = record.get("trajectories") or {}
    names: list[str] = []
    for e in record.get("expectations", []):
        if e.get("measure") in traj and e["measure"] not in names:
            names.append(e["measure"])
    for p in (record.get("predictions") or {}).values():
        if p["measure"] in traj and p["measure"] not in names:
            names.append(p["measure"])
    return names or [n for n in traj if traj[n]["steps"]]


def _log_scale(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return len(v) > 1 and bool(np.all(v > 0)) and float(v.max() / v.min()) > 1e3


def _prediction_at(pred: dict | None, steps: np.ndarray) -> np.ndarray | None:
    """A recorded prediction series at ``steps`` (NaN where it was not evaluated)."""
    if pred is None:
        return None
    table = dict(zip(pred["steps"], _array(pred["values"]).tolist()))
    return np.array([table.get(int(s), math.nan) for s in steps], dtype=np.float64)


def _to_measure_units(e: dict, level: float, pred: np.ndarray | None) -> np.ndarray | float:
    """A level of the compared series in the measure's units (times / plus the prediction)."""
    if e.get("predict") is None or pred is None:
        return level
    return level * pred if e.get("compare") == "ratio" else pred + level


def _band(e: dict, steps: np.ndarray, preds: dict) -> tuple[np.ndarray | None, np.ndarray | None] | None:
    """The accepted region of a value statistic at ``steps``, as ``(lower, upper)`` edges in the
    measure's units (None: that side is unbounded); None when the statistic is not a value of
    the series or the record has no limits."""
    limits = e.get("limits")
    if not limits or not VALUE_STATISTICS.match(e.get("statistic") or ""):
        return None
    lo, hi = limits
    if e.get("statistic") == "max_abs":  # |series| <= hi: the band +-hi around the prediction (or zero)
        lo = -hi if hi is not None else None
    pred = _prediction_at(preds.get(e.get("prediction") or ""), steps)
    lower, upper = (None if x is None else np.broadcast_to(_to_measure_units(e, float(x), pred), steps.shape)
                    for x in (lo, hi))
    return lower, upper


def expectation_numbers(record: dict) -> dict[str, int]:
    """The number of each expectation of a record, in its order from 1 (figures and captions)."""
    return {e["name"]: i for i, e in enumerate(record.get("expectations", []), 1)}


def _full_run(window, steps: np.ndarray, last_step: int) -> bool:
    return window is None or (window[0] <= (int(steps[0]) if len(steps) else 0) and window[1] >= last_step)


def _shade_windows(ax, group: list[dict], numbers: dict[str, int], steps: np.ndarray, last_step: int) -> None:
    """Shade each distinct window (not the whole run, which says nothing) once, labelled with the
    numbers of the expectations taken on it; red when one of them failed."""
    windows: dict[tuple[int, int], list[dict]] = {}
    for e in group:
        if not _full_run(e.get("window"), steps, last_step):
            windows.setdefault(tuple(e["window"]), []).append(e)
    for k, ((lo, hi), es) in enumerate(sorted(windows.items())):
        color = _PASS if all(e.get("passed") for e in es) else _FAIL
        if hi > lo:
            ax.axvspan(lo, hi, color=color, alpha=0.08, lw=0)
        else:  # a one-step window: a line
            ax.axvline(lo, color=color, alpha=0.5, lw=1)
        label = ",".join(f"#{numbers[e['name']]}" for e in es)
        ax.annotate(label, xy=(lo, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -9 - 8 * (k % 4)),
                    textcoords="offset points", fontsize=6.5, color=color)


def _draw_limits(ax, e: dict, steps: np.ndarray, preds: dict, last_step: int) -> None:
    """The accepted region, thresholds and predicted steps of expectation ``e``."""
    color = _PASS if e.get("passed") else _FAIL
    window = e.get("window")
    lo_w, hi_w = (window if window else (int(steps[0]) if len(steps) else 0, last_step))
    pred_series = preds.get(e.get("prediction") or "")
    inside = (steps >= lo_w) & (steps <= hi_w)
    statistic = e.get("statistic") or ""
    limits = e.get("limits")
    band = _band(e, steps[inside], preds) if inside.any() else None
    if band is not None:
        lower, upper = band
        if lower is not None and upper is not None:
            ax.fill_between(steps[inside], lower, upper, color=color, alpha=0.15, lw=0, step="mid")
        for edge in band:
            if edge is not None:
                ax.plot(steps[inside], edge, color=color, lw=0.8, ls=":")
    threshold = e.get("threshold")
    if threshold is not None:
        ws = steps[inside] if inside.any() else steps
        level = _to_measure_units(e, float(threshold), _prediction_at(pred_series, ws))
        ax.plot(ws, np.broadcast_to(level, ws.shape), color=color, lw=0.8, ls="-.")
        if e.get("check") == "reaches" and limits and limits[1] is not None:
            ax.axvline(lo_w + limits[1], color=color, lw=0.8, ls="--")  # the deadline
        elif limits and statistic.startswith("first_step"):
            lo, hi = limits
            if lo is not None and hi is not None:  # the predicted step and its tolerance
                ax.axvspan(lo, hi, facecolor="none", edgecolor=color, hatch="////", lw=0.5, alpha=0.6)
        if e.get("measured") is not None and statistic.startswith("first_step"):
            ax.axvline(float(e["measured"]), color=color, lw=1.0)


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def _zoom_range(record: dict, measure: str, last_step: int) -> tuple[float, float] | None:
    """A y-range on the partial windows of expectations against a prediction, when those values
    span under a fifth of the whole trajectory's range (the effective rank on its predicted
    intervals, after falling from n): a second panel shows them."""
    traj = record["trajectories"][measure]
    steps, values = np.asarray(traj["steps"], dtype=np.int64), _array(traj["values"])
    preds = record.get("predictions") or {}
    inside = np.zeros(len(steps), dtype=bool)
    extra = []
    for e in record.get("expectations", []):
        if e.get("measure") != measure or not e.get("predict") or _full_run(e.get("window"), steps, last_step):
            continue
        lo, hi = e["window"]
        mask = (steps >= lo) & (steps <= hi)
        inside |= mask
        pred = _prediction_at(preds.get(e.get("prediction") or ""), steps[mask])
        if pred is not None:
            extra.append(_finite(pred))
        extra += [_finite(edge) for edge in (_band(e, steps[mask], preds) or ()) if edge is not None]
    full, part = _finite(values), _finite(values[inside])
    if not len(part) or not len(full):
        return None
    part = np.concatenate([part, *extra])
    lo, hi = float(part.min()), float(part.max())
    whole = float(full.max() - full.min())
    if whole == 0 or (hi - lo) > 0.2 * whole:
        return None
    pad = 0.15 * (hi - lo) or 0.05 * abs(hi) or 0.05
    return lo - pad, hi + pad


def _measure_panel(ax, record: dict, measure: str, numbers: dict[str, int], zoom: tuple[float, float] | None = None) -> None:
    traj = record["trajectories"][measure]
    steps, values = np.asarray(traj["steps"], dtype=np.int64), _array(traj["values"])
    preds = record.get("predictions") or {}
    last_step = _last_step(record, steps)
    group = [e for e in record.get("expectations", []) if e.get("measure") == measure]
    marker = "o" if len(steps) <= 60 else None
    ax.plot(steps, values, color="C0", lw=1.2, marker=marker, ms=3, label="measured", zorder=3)
    drawn = [_finite(values)]
    for i, (key, pred) in enumerate(p for p in preds.items() if p[1]["measure"] == measure):
        p_steps, p_values = np.asarray(pred["steps"], dtype=np.int64), _array(pred["values"])
        windows = [e["window"] for e in group if e.get("prediction") == key
                   and not _full_run(e.get("window"), steps, last_step)]
        color = f"C{1 + i % 8}"
        key = key.removesuffix(f" on {measure}")  # the legend names the prediction
        if windows:  # faint everywhere, solid where an expectation compares with it
            ax.plot(p_steps, p_values, color=color, lw=0.8, ls="--", alpha=0.4, zorder=2)
            for j, (lo, hi) in enumerate(windows):
                keep = (p_steps >= lo) & (p_steps <= hi)
                ax.plot(p_steps[keep], p_values[keep], color=color, lw=1.3, label=key if j == 0 else None, zorder=4)
        else:
            ax.plot(p_steps, p_values, color=color, lw=1.1, ls="--", label=key, zorder=4)
        drawn.append(_finite(p_values))
    _shade_windows(ax, group, numbers, steps, last_step)
    for e in group:
        _draw_limits(ax, e, steps, preds, last_step)
    failed = [e for e in group if not e.get("passed")]
    if failed:  # a panel with a failed expectation: red frame, and what failed
        for spine in ax.spines.values():
            spine.set_edgecolor(_FAIL)
            spine.set_linewidth(1.5)
        text = "\n".join(f"#{numbers[e['name']]} {e['name']} FAILS: {e.get('statistic') or '-'} = "
                         f"{'-' if e.get('measured') is None else format(e['measured'], '.4g')} "
                         f"({e.get('tolerance') or e.get('message') or '-'})" for e in failed[:3])
        ax.text(0.01, 0.02, text, transform=ax.transAxes, fontsize=6, color=_FAIL, va="bottom",
                bbox={"facecolor": "white", "edgecolor": _FAIL, "alpha": 0.85, "lw": 0.5})
    measured = drawn[0]
    if zoom is not None:
        ax.set_ylim(*zoom)
    elif _log_scale(measured):
        ax.set_yscale("log")
        positive = measured[measured > 0]
        if len(positive):  # predictions far below the measured range (a curve that keeps falling) are clipped
            ax.set_ylim(float(positive.min()) / 10, float(positive.max()) * 10)
    elif len(measured):
        span = float(measured.max() - measured.min()) or abs(float(measured.max())) or 1.0
        others = np.concatenate(drawn[1:]) if len(drawn) > 1 else np.array([])
        lo = min(float(measured.min()), float(others.min()) if len(others) else math.inf)
        hi = max(float(measured.max()), float(others.max()) if len(others) else -math.inf)
        ax.set_ylim(max(lo, float(measured.min()) - 2 * span) - 0.05 * span,
                    min(hi, float(measured.max()) + 2 * span) + 0.05 * span)
    ax.set_title(measure + (" (zoom on the predicted windows)" if zoom else ""), fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="best")


def _last_step(record: dict, steps: np.ndarray) -> int:
    info, case = record.get("info") or {}, record.get("case") or {}
    return int(info.get("last_step") or case.get("steps") or (steps[-1] if len(steps) else 0))


def _scatter_panel(ax, record: dict, e: dict, other: str) -> None:
    traj = record["trajectories"]
    a = dict(zip(traj[e["measure"]]["steps"], _array(traj[e["measure"]]["values"]).tolist()))
    b = dict(zip(traj[other]["steps"], _array(traj[other]["values"]).tolist()))
    steps = np.array(sorted(set(a) & set(b)), dtype=np.int64)
    x, y = np.array([b[s] for s in steps]), np.array([a[s] for s in steps])
    lo, hi = e.get("window") or ((int(steps[0]), int(steps[-1])) if len(steps) else (0, 0))
    inside = (steps >= lo) & (steps <= hi)
    ax.scatter(x[~inside], y[~inside], s=8, color="0.7", label="outside the window")
    sc = ax.scatter(x[inside], y[inside], s=10, c=steps[inside], cmap="viridis", label="in the window")
    ax.figure.colorbar(sc, ax=ax, label="step").ax.tick_params(labelsize=6)
    ax.set_xlabel(other, fontsize=8)
    ax.set_ylabel(e["measure"], fontsize=8)
    ax.set_title(f"{e['measure']} against {other}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="best")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def case_figure(record: dict, numbers: dict[str, int] | None = None) -> bytes | None:
    """PNG of one case record (None when it recorded no trajectory: skipped, or it raised).

    ``numbers``: the expectation numbers the caption uses (default: their order, from 1).
    """
    traj = record.get("trajectories") or {}
    measures = [m for m in panel_measures(record) if traj.get(m, {}).get("steps")]
    expectations = record.get("expectations", [])
    numbers = numbers or expectation_numbers(record)
    scatters = []
    for e in expectations:
        m = _SPEARMAN.match(e.get("statistic") or "")
        if m and m.group("other") in traj and e["measure"] in traj:
            scatters.append((e, m.group("other")))
    panels: list[tuple] = []
    for m in measures:
        panels.append(("measure", m, None))
        steps = np.asarray(traj[m]["steps"], dtype=np.int64)
        zoom = _zoom_range(record, m, _last_step(record, steps))
        if zoom is not None:
            panels.append(("measure", m, zoom))
    panels += [("scatter", e, other) for e, other in scatters]
    n = len(panels)
    if n == 0:
        return None
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.6 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (kind, a, b) in zip(axes, panels):
        if kind == "measure":
            _measure_panel(ax, record, a, numbers, b)
        else:
            _scatter_panel(ax, record, a, b)
    for ax in axes[n:]:
        ax.set_visible(False)
    case = record.get("case", {})
    fig.suptitle(f"{record['suite']['id']} [{case.get('id', '?')}]  {record.get('status', '').upper()}", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def sweep_figure(record: dict, axis_values: dict[str, Any], axis: str) -> bytes | None:
    """PNG of one sweep group: each expectation's per-case statistic against the swept ``axis``
    (``axis_values``: case id -> its value on the axis)."""
    expectations = [e for e in record.get("expectations", []) if e.get("per_case")]
    if not expectations:
        return None
    fig = Figure(figsize=(4.6 * min(3, len(expectations)), 3.2 * math.ceil(len(expectations) / 3)))
    axes = fig.subplots(math.ceil(len(expectations) / 3), min(3, len(expectations)), squeeze=False).ravel()
    for ax, e in zip(axes, expectations):
        pts = sorted((float(axis_values[c]), v) for c, v in e["per_case"].items() if c in axis_values and v is not None)
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", color=_PASS if e.get("passed") else _FAIL)
        ax.set_xlabel(axis, fontsize=8)
        ax.set_ylabel(e.get("measure", ""), fontsize=8)
        measured = "-" if e.get("measured") is None else f"{e['measured']:.4g}"
        ax.set_title(f"{e['name']}\n{e.get('statistic')} = {measured}  ({e.get('tolerance') or '-'})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(expectations):]:
        ax.set_visible(False)
    fig.suptitle(f"{record['suite']['id']} [{record.get('group', '?')}]  {record.get('status', '').upper()}", fontsize=10)
    fig.tight_layout()
    return _png(fig)
