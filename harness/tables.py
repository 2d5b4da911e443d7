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


def summary_rows(results) -> list[list[str]]:
    """One row per expectation of every case (one row for a skipped case)."""
    rows = []
    for r in results:
        c = r.case
        if r.skipped is not None:
            rows.append([c.suite.id, c.id, "-", "-", "-", "-", "-", f"SKIP ({r.skipped})"])
            continue
        for v in r.verdicts:
            stat = v.statistic or "-"
            if v.predict:
                stat = f"{stat}({v.measure}{'/' if v.compare == 'ratio' else '-'}{v.predict})"
            rows.append([c.suite.id, c.id, v.name, stat, fmt(v.measured), fmt(v.predicted), v.tolerance or "-",
                         "PASS" if v.passed else "FAIL"])
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
    return out
