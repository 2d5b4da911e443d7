"""Plain-text tables: the run summary and the explanation printed under a failed check."""

from __future__ import annotations

from typing import Any, Sequence

from ..run.calibrate import NOMINAL
from ..run.expectations import Verdict

__all__ = ["format_table", "summary_rows", "failure_table", "fmt", "case_reason", "format_calibration"]


def fmt(x: float | None) -> str:
    """A number as tables print it (6 significant digits), ``-`` for none."""
    return "-" if x is None else f"{x:.6g}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under ``header`` and a rule, two spaces apart."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


SUMMARY_HEADER = ("suite", "case", "expectation", "statistic", "measured", "predicted", "tolerance", "verdict")


def _row(suite_id: str, case_id: str, v: Verdict, why: str | None = None) -> list[str]:
    stat = v.statistic or "-"
    if v.predict and v.per_case is None:
        stat = f"{stat}({v.measure}{'/' if v.compare == 'ratio' else '-'}{v.predict})"
    return [suite_id, case_id, v.name, stat, fmt(v.measured), fmt(v.predicted), v.tolerance or "-",
            ("PASS" if v.passed else "FAIL") + (f" ({why})" if why else "")]


REASON_WIDTH = 90


def case_reason(result) -> str | None:
    """Why a case ended early, for its rows of the summary: ``error at step N: Type: message``
    (first line, shortened) or ``diverged at step N``; None for a run that went to its end."""
    if result.error is not None:
        at = result.info.get("error_step")
        text = (f"error at step {at}: " if at is not None else "error: ") + result.error.strip().splitlines()[0]
        return text if len(text) <= REASON_WIDTH else text[:REASON_WIDTH - 3] + "..."
    if result.diverged_at is not None:
        return f"diverged at step {result.diverged_at}"
    return None


def summary_rows(results, sweeps=()) -> list[list[str]]:
    """One row per expectation of every case (one row for a skipped case, and for a case with no
    expectation that errored or diverged), then one per sweep expectation and group (``sweeps``:
    ``[(suite id, group id, verdict)]``). A case that raised or diverged says so in its verdicts."""
    rows = []
    for r in results:
        c = r.case
        if r.skipped is not None:
            rows.append([c.suite.id, c.id, "-", "-", "-", "-", "-", f"SKIP ({r.skipped})"])
            continue
        why = case_reason(r)
        rows.extend(_row(c.suite.id, c.id, v, why) for v in r.verdicts)
        if why and not r.verdicts:
            rows.append([c.suite.id, c.id, "-", "-", "-", "-", "-", f"{'PASS' if r.passed else 'FAIL'} ({why})"])
    rows.extend(_row(suite_id, key, v) for suite_id, key, v in sweeps)
    return rows


def failure_table(v: Verdict) -> str:
    """What a red CI run shows for one failed expectation."""
    rows = [["expectation", v.name], ["measure", v.measure + (f" vs {v.predict} ({v.compare})" if v.predict else "")],
            ["statistic", v.statistic or "-"], ["measured", fmt(v.measured)], ["predicted", fmt(v.predicted)],
            ["tolerance", v.tolerance or "-"], ["window", f"steps {v.window[0]}..{v.window[1]}" if v.window else "-"],
            ["why", v.message or "-"]]
    out = format_table(["", ""], rows).split("\n", 2)[2]
    if v.last:
        out += "\nlast measurements in the window (step: value):\n" + "\n".join(f"  {s}: {x:.6g}" for s, x in v.last)
    if v.per_case:
        out += "\nper case:\n" + "\n".join(f"  {k}: {fmt(x)}" for k, x in v.per_case.items())
    return out


def format_calibration(record: dict[str, Any]) -> str:
    """The calibration as a table (one row per expectation) and a line per perturbation."""
    labels = [k for k in record["caught"] if k != NOMINAL]
    header = ["expectation", "nominal min", "median", "max", "smallest margin", "false alarms",
              *[f"caught {k}" for k in labels]]
    rows = []
    for e in record["expectations"]:
        n = e["nominal"]
        rows.append([e["expectation"], fmt(n["min"]), fmt(n["median"]), fmt(n["max"]), fmt(n["smallest_margin"]),
                     f"{n['failed']}/{n['runs']}",
                     *[f"{e['perturbed'][k]['failed']}/{e['perturbed'][k]['runs']}" if k in e["perturbed"] else "-"
                       for k in labels]])
    lines = [format_table(header, rows), ""]
    nom = record["caught"].get(NOMINAL, {"failed_runs": 0, "runs": 0})
    lines.append(f"nominal: {nom['failed_runs']} of {nom['runs']} runs fail (false alarms) over seeds "
                 f"{record['seeds']}")
    for k in labels:
        c = record["caught"][k]
        lines.append(f"{k}: caught in {c['failed_runs']} of {c['runs']} runs (a run is caught when any expectation fails)")
    return "\n".join(lines)
