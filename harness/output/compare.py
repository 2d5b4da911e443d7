"""``theory-harness compare BASE HEAD``: what a change did to every expectation.

Both sides are folders of result records (for example the main branch's and a pull request's);
each reads as its newest record per case and sweep group. Every expectation of a case or sweep
group found on either side is one row: the statistic measured before and after, the change
(absolute and relative), the margin to the tolerance before and after (signed, in the
statistic's units, positive when it holds; :mod:`harness.spec.checks`) and a flag:

* ``REGRESSED``: held on BASE, fails on HEAD (the exit status is then 1);
* ``MARGIN``: holds on both, but the margin shrank by more than ``shrink`` (a fraction of
  BASE's margin) -- a change that moved a theory metric towards its tolerance;
* ``FIXED``: failed on BASE, holds on HEAD; ``STILL FAILING``;
* ``NEW`` / ``GONE``: on one side only (a new suite, or a case that did not run);
* ``MERGED``: a BASE case that ran exactly what a HEAD case runs (two suites that repeated one
  run, merged), compared with that case's verdict.

A case that was *renamed* (its suite file merged into another, a sweep axis added to its id) is
matched by what ran rather than by its name: a case record on one side only pairs with one on
the other side only when both ran the same problem table, update rule, hyper-parameters, run
length, seed, device and dtype (a sweep group: the same member cases), and its expectations of
the same name are compared as usual, the row showing the case's old name (``was ...``).

The output is a plain-text table or Markdown (a summary line, the flagged rows, every row in a
collapsed ``<details>`` block), ready to post on a pull request.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import HarnessError
from .records import RECORD_SCHEMA, SWEEP_SCHEMA, latest, read_records, record_key
from .tables import fmt, format_table

__all__ = ["Row", "compare", "load_side", "fingerprint", "format_text", "format_markdown", "FLAGGED"]

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
    was: str = ""  # BASE's ``suite/case`` when the case was renamed (matched by what ran)
    into: str = ""  # flag MERGED: the HEAD ``suite/case`` that runs the same thing as this BASE case

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


def load_side(path: str | Path) -> tuple[dict[tuple[str, str, str], dict], dict[tuple[str, str], str]]:
    """``{(suite id, case or group id, expectation): verdict}`` of the newest records under
    ``path``, and ``{(suite id, case or group id): fingerprint}`` (:func:`fingerprint`)."""
    path = Path(path)
    if not path.is_dir():
        raise HarnessError(f"{path}: not a folder of result records")
    records = latest(read_records(path, schemas=(RECORD_SCHEMA, SWEEP_SCHEMA)))
    if not records:
        raise HarnessError(f"{path}: no result records (theory-harness/result/1 or sweep/1) under it")
    out, prints = {}, {}
    for r in records:
        suite, case = record_key(r)
        for v in r.get("expectations", []):
            out[(suite, case, v["name"])] = v
        if r["schema"] == RECORD_SCHEMA:
            prints[(suite, case)] = fingerprint(r)
    for r in records:  # a sweep group: the fingerprints of its cases
        if r["schema"] == SWEEP_SCHEMA:
            suite, group = record_key(r)
            members = [prints.get((suite, c)) for c in r.get("cases", [])]
            if members and None not in members:
                prints[(suite, group)] = json.dumps(["sweep", sorted(members)])
    return out, prints


def fingerprint(record: dict) -> str:
    """What a case record ran, whatever its suite and case are called: its problem table,
    update rule, hyper-parameters, run length, seed, device and dtype (canonical JSON)."""
    c = record.get("case", {})
    return json.dumps([c.get(k) for k in ("problem", "optimizer", "hyper", "steps", "seed", "device", "dtype")],
                      sort_keys=True, default=str)


def _renames(a_prints: dict, b_prints: dict) -> tuple[dict, dict]:
    """``({head key: base key}, {base key: head key})`` over ``(suite, case)`` keys: the first
    pairs a case on HEAD only with the case on BASE only that ran the same thing (of several,
    the one of the same suite id, then of the same case id); the second maps the other BASE-only
    cases that ran the same thing as a HEAD case -- duplicates merged into one -- to that case."""
    gone = {k: p for k, p in a_prints.items() if k not in b_prints}
    new = {k: p for k, p in b_prints.items() if k not in a_prints}
    by_print: dict[str, list] = {}
    for k, p in sorted(gone.items()):
        by_print.setdefault(p, []).append(k)
    renamed, merged = {}, {}
    for k, p in sorted(new.items()):
        old = [o for o in by_print.get(p, []) if o not in renamed.values()]
        if old and sum(q == p for q in new.values()) == 1:
            renamed[k] = min(old, key=lambda o: (o[0] != k[0], o[1] != k[1], o))
    heads = {p: k for k, p in b_prints.items()}
    for k, p in gone.items():
        if k not in renamed.values() and p in heads and list(b_prints.values()).count(p) == 1:
            merged[k] = heads[p]
    return renamed, merged


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
    (a, a_prints), (b, b_prints) = load_side(base), load_side(head)
    renamed, merged = _renames(a_prints, b_prints)
    moved = {(*old, name): (*new, name) for new, old in renamed.items()
             for (s, c, name) in list(a) if (s, c) == old and (*new, name) in b}
    moved_from = {v: k for k, v in moved.items()}
    rows = []
    for key in sorted((set(a) - set(moved)) | set(b)):
        old = moved_from.get(key)
        va, vb = a.get(old or key), b.get(key)
        stat = (vb or va).get("statistic") or "-"
        into = merged.get(key[:2])
        if into is not None and (*into, key[2]) in b:  # a duplicate run, merged into a HEAD case
            vb = b[(*into, key[2])]
            flag = "MERGED" if _flag(va, vb, shrink) == "" else _flag(va, vb, shrink)
            rows.append(Row(*key, stat, va, vb, flag, "", "/".join(into)))
            continue
        rows.append(Row(*key, stat, va, vb, _flag(va, vb, shrink), "/".join(old[:2]) if old else ""))
    order = {f: i for i, f in enumerate(("REGRESSED", "MARGIN", "GONE", "STILL FAILING", "FIXED", "NEW", "MERGED", ""))}
    return sorted(rows, key=lambda r: order[r.flag])


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


_HEADER = ("suite", "case", "expectation", "statistic", "base", "head", "change", "rel", "margin base",
           "margin head", "margin change", "flag")


def _cells(r: Row) -> list[str]:
    name = r.case + (f" (was {r.was})" if r.was else "") + (f" (same run as {r.into})" if r.into else "")
    return [r.suite, name, r.expectation, r.statistic, fmt(_value(r.base, "measured")), fmt(_value(r.head, "measured")),
            fmt(r.change), _pct(r.relative_change), fmt(_value(r.base, "margin")), fmt(_value(r.head, "margin")),
            _pct(r.margin_change), r.flag or "ok"]


def summary(rows: list[Row], shrink: float) -> str:
    counts = {f: sum(r.flag == f for r in rows) for f in ("REGRESSED", "MARGIN", "GONE", "STILL FAILING", "FIXED", "NEW")}
    renamed = len({r.was for r in rows if r.was})
    merged = len({(r.suite, r.case) for r in rows if r.into})
    return (f"{len(rows)} expectations compared: {counts['REGRESSED']} regressed (held, now fail), "
            f"{counts['MARGIN']} with a margin shrunk by more than {shrink:.0%}, {counts['STILL FAILING']} still "
            f"failing, {counts['FIXED']} fixed, {counts['NEW']} new, {counts['GONE']} gone"
            + (f"; {renamed} cases or groups renamed (matched by what ran)" if renamed else "")
            + (f"; {merged} duplicate cases merged into one that runs the same" if merged else ""))


def format_text(rows: list[Row], shrink: float, only_flagged: bool = False) -> str:
    """A plain-text table of ``rows`` (only the flagged ones with ``only_flagged``) and the summary."""
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
