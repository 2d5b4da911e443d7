"""``theory-harness compare BASE HEAD``: what a change did to every expectation.

Both sides are folders of result records (for example the main branch's and a pull request's);
each reads as its newest record per case and sweep group. Every expectation of a case or sweep
group found on either side is one row: the statistic measured before and after, the change
(absolute and relative), the margin to the tolerance before and after (signed, in the
statistic's units, positive when it holds; :mod:`harness.checks`) and a flag:

* ``REGRESSED``: held on BASE, fails on HEAD (the exit status is then 1);
* ``MARGIN``: holds on both, but the margin shrank by more than ``shrink`` (a fraction of
  BASE's margin) -- a change that moved a theory metric towards its tolerance;
* ``FIXED``: failed on BASE, holds on HEAD; ``STILL FAILING``;
* ``NEW`` / ``GONE``: on one side only (a new suite, or a case that did not run).

The output is a plain-text table or Markdown (a summary line, the flagged rows, every row in a
collapsed ``<details>`` block), ready to post on a pull request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError
from .records import RECORD_SCHEMA, SWEEP_SCHEMA, latest, read_records, record_key
from .tables import fmt, format_table

__all__ = ["Row", "compare", "load_side", "format_text", "format_markdown", "FLAGGED"]

#: Flags that a reader must look at (the others are informational).
FLAGGED = ("REGRESSED", "MARGIN", "GONE", "STILL FAILING")


@dataclass(frozen=True)
class Row:
    """One expectation of one case or sweep group, on both sides."""

    suite: str
    case: str
    expectation: str
    statistic: str
    base: dict | None
    head: dict | None
    flag: str

    @property
    def change(self) -> float | None:
        a, b = _value(self.base, "measured"), _value(self.head, "measured")
        return None if a is None or b is None else b - a

    @property
    def relative_change(self) -> float | None:
        a, d = _value(self.base, "measured"), self.change
        return None if d is None or not a else d / abs(a)

    @property
    def margin_change(self) -> float | None:
        """``(head margin - base margin) / |base margin|``."""
        a, b = _value(self.base, "margin"), _value(self.head, "margin")
        return None if a is None or b is None or a == 0 else (b - a) / abs(a)


def _value(verdict: dict | None, key: str) -> float | None:
    if verdict is None:
        return None
    v = verdict.get(key)
    if isinstance(v, str):  # "inf" / "-inf" as JSON writes them
        v = float(v)
    return v if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else None


def load_side(path: str | Path) -> dict[tuple[str, str, str], dict]:
    """``{(suite id, case or group id, expectation): verdict}`` of the newest records under ``path``."""
    path = Path(path)
    if not path.is_dir():
        raise HarnessError(f"{path}: not a folder of result records")
    records = latest(read_records(path, schemas=(RECORD_SCHEMA, SWEEP_SCHEMA)))
    if not records:
        raise HarnessError(f"{path}: no result records (theory-harness/result/1 or sweep/1) under it")
    out = {}
    for r in records:
        suite, case = record_key(r)
        for v in r.get("expectations", []):
            out[(suite, case, v["name"])] = v
    return out


def _flag(base: dict | None, head: dict | None, shrink: float) -> str:
    if base is None:
        return "NEW"
    if head is None:
        return "GONE"
    if base.get("passed") and not head.get("passed"):
        return "REGRESSED"
    if not base.get("passed"):
        return "FIXED" if head.get("passed") else "STILL FAILING"
    a, b = _value(base, "margin"), _value(head, "margin")
    if a is not None and b is not None and a > 0 and b < a * (1 - shrink):
        return "MARGIN"
    return ""


def compare(base: str | Path, head: str | Path, shrink: float = 0.5) -> list[Row]:
    """Every expectation of either side, flagged; flagged rows first, then by suite and case."""
    if not 0 < shrink <= 1:
        raise HarnessError(f"--shrink must be a fraction in (0, 1], got {shrink}")
    a, b = load_side(base), load_side(head)
    rows = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        stat = (vb or va).get("statistic") or "-"
        rows.append(Row(*key, stat, va, vb, _flag(va, vb, shrink)))
    order = {f: i for i, f in enumerate(("REGRESSED", "MARGIN", "GONE", "STILL FAILING", "FIXED", "NEW", ""))}
    return sorted(rows, key=lambda r: order[r.flag])


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


_HEADER = ("suite", "case", "expectation", "statistic", "base", "head", "change", "rel", "margin base",
           "margin head", "margin change", "flag")


def _cells(r: Row) -> list[str]:
    return [r.suite, r.case, r.expectation, r.statistic, fmt(_value(r.base, "measured")), fmt(_value(r.head, "measured")),
            fmt(r.change), _pct(r.relative_change), fmt(_value(r.base, "margin")), fmt(_value(r.head, "margin")),
            _pct(r.margin_change), r.flag or "ok"]


def summary(rows: list[Row], shrink: float) -> str:
    counts = {f: sum(r.flag == f for r in rows) for f in ("REGRESSED", "MARGIN", "GONE", "STILL FAILING", "FIXED", "NEW")}
    return (f"{len(rows)} expectations compared: {counts['REGRESSED']} regressed (held, now fail), "
            f"{counts['MARGIN']} with a margin shrunk by more than {shrink:.0%}, {counts['STILL FAILING']} still "
            f"failing, {counts['FIXED']} fixed, {counts['NEW']} new, {counts['GONE']} gone")


def format_text(rows: list[Row], shrink: float, only_flagged: bool = False) -> str:
    shown = [r for r in rows if r.flag in FLAGGED] if only_flagged else rows
    table = format_table(_HEADER, [_cells(r) for r in shown]) if shown else "(no rows)"
    return table + "\n\n" + summary(rows, shrink)


def _md_table(rows: list[Row]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(esc(c) for c in _cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def format_markdown(rows: list[Row], shrink: float, base: str, head: str) -> str:
    """A pull-request comment: the verdict, the flagged rows, then every row collapsed."""
    regressed = any(r.flag == "REGRESSED" for r in rows)
    flagged = [r for r in rows if r.flag in FLAGGED]
    head_line = ("### theory-harness: :x: an expectation that held now fails" if regressed else
                 "### theory-harness: no expectation went from passing to failing")
    parts = [head_line, "", f"`{base}` → `{head}`. {summary(rows, shrink)}.", "",
             "Margin: signed distance of the statistic to its tolerance (positive: holds). "
             f"`MARGIN` flags a margin that shrank by more than {shrink:.0%} of the base's while still holding.", ""]
    if flagged:
        parts += ["#### Flagged", "", _md_table(flagged), ""]
    parts += ["<details><summary>Every expectation</summary>", "", _md_table(rows), "", "</details>", ""]
    return "\n".join(parts)
