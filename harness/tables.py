"""Plain-text tables: the run summary and the explanation printed under a failed check."""

from __future__ import annotations

from typing import Sequence

from .expectations import Verdict

__all__ = ["format_table", "summary_rows", "failure_table", "fmt"]


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


SUMMARY_HEADER = ("suite", "case", "expectation", "statistic", "measured", "predicted", "tolerance", "verdict")


def _row(suite_id: str, case_id: str, v: Verdict) -> list[str]:
    stat = v.statistic or "-"
    if v.predict and v.per_case is None:
        stat = f"{stat}({v.measure}{'/' if v.compare == 'ratio' else '-'}{v.predict})"
    return [suite_id, case_id, v.name, stat, fmt(v.measured), fmt(v.predicted), v.tolerance or "-",
            "PASS" if v.passed else "FAIL"]


def summary_rows(results, sweeps=()) -> list[list[str]]:
    """One row per expectation of every case (one row for a skipped case), then one per
    sweep expectation and group (``sweeps``: ``[(suite id, group id, verdict)]``)."""
    rows = []
    for r in results:
        c = r.case
        if r.skipped is not None:
            rows.append([c.suite.id, c.id, "-", "-", "-", "-", "-", f"SKIP ({r.skipped})"])
            continue
        rows.extend(_row(c.suite.id, c.id, v) for v in r.verdicts)
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
