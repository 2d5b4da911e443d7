"""``theory-harness report``: result records as one static HTML page with a figure per case.

The page (``DIR/index.html``) and its figures (``DIR/figures/<suite>/<case>.png``) need nothing
but a browser: no script, no font, no style sheet or image fetched from anywhere. Sections
follow the suites; each case has its figure (see :mod:`harness.output.figures`) and a caption with the
verdict, a table of every expectation (statistic, measured, predicted, tolerance, margin,
window) and the environment it ran in; each sweep group has its own figure. The head of the
page counts the verdicts, lists the failures first and describes every run that contributed.

A folder holding several runs reads as its newest record per case (:func:`harness.output.records.latest`).
Every file is written atomically; ``index.html`` is written last, so a page never links a figure
that is not complete.
"""

from __future__ import annotations

import datetime as _dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..errors import HarnessError
from .figures import case_figure, expectation_numbers, sweep_figure
from .records import (CALIBRATION_SCHEMA, RECORD_SCHEMA, SWEEP_SCHEMA, latest, newest_calibrations, read_records,
                      writable_folder, write_bytes_replacing)

__all__ = ["build_report", "Report", "default_results"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1500px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .pass { color: #2e7d32; font-weight: 600; } .fail { color: #c62828; font-weight: 600; }
.skip { color: #777; font-weight: 600; } figure { margin: 1.2em 0; border-top: 1px dashed #ddd; padding-top: 0.6em; }
figure img { max-width: 100%; height: auto; display: block; } figcaption { font-size: 0.9em; }
.env { color: #555; font-size: 0.8em; } .claim { font-style: italic; } code { font-size: 0.9em; }
.note { background: #fff3f3; border-left: 3px solid #c62828; padding: 0.3em 0.6em; }
"""


def default_results(out: str | Path = "results") -> Path:
    """The newest run folder under ``out`` (run ids start with a UTC timestamp)."""
    out = Path(out)
    runs = sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    if not runs:
        raise HarnessError(f"{out}: no run folders; give the result records to report on (files or folders)")
    return runs[-1]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return _e(x)
    return f"{x:.6g}"


def _verdict(status: str) -> str:
    cls = {"passed": "pass", "failed": "fail"}.get(status, "skip")
    return f'<span class="{cls}">{_e(status.upper())}</span>'


@dataclass
class Report:
    """What a built report holds: the page, its figures, and the counts it shows."""

    index: Path
    figures: list[Path] = field(default_factory=list)
    cases: int = 0
    failed: int = 0
    skipped: int = 0


def _environment_line(env: dict, record: dict) -> str:
    git = env.get("git") or {}
    commit = (git.get("commit") or "?")[:10] + (" (dirty)" if git.get("dirty") else "") if git else "no git"
    parts = [f"device {env.get('device', '?')} ({env.get('device_name', '?')})", f"dtype {env.get('dtype', '?')}",
             f"torch {env.get('torch', '?')}", f"matmul precision {env.get('float32_matmul_precision', '?')}",
             f"{env.get('torch_threads', '?')} thread(s)", f"commit {commit}", f"host {env.get('hostname', '?')}",
             f"wall {record.get('wall_time_s', 0):.1f} s", f"run {record.get('run_id', '?')}"]
    return "; ".join(_e(p) for p in parts)


def _expectation_table(expectations: list[dict], numbers: dict[str, int]) -> str:
    head = ("#", "expectation", "statistic", "measured", "predicted", "tolerance", "margin", "window", "verdict", "why")
    rows = []
    for e in expectations:
        stat = e.get("statistic") or "-"
        if e.get("predict") and not e.get("per_case"):
            pred = (e.get("prediction") or e["predict"]).removesuffix(f" on {e['measure']}")
            stat += f" of {e['measure']} {'/' if e.get('compare') == 'ratio' else '-'} {pred}"
        else:
            stat += f" of {e.get('measure', '?')}"
        window = e.get("window")
        cells = [str(numbers.get(e["name"], "")), _e(e["name"]), _e(stat), _num(e.get("measured")),
                 _num(e.get("predicted")), _e(e.get("tolerance") or "-"), _num(e.get("margin")),
                 _e(f"{window[0]}..{window[1]}") if window else "-",
                 _verdict("passed" if e.get("passed") else "failed"), _e(e.get("message") or "")]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


def _case_block(record: dict, src: str | None) -> str:
    case = record.get("case", {})
    numbers = expectation_numbers(record)
    n_fail = sum(not e.get("passed") for e in record.get("expectations", []))
    title = (f"{_verdict(record.get('status', '?'))} <b>{_e(case.get('id', '?'))}</b> "
             f"({len(numbers) - n_fail}/{len(numbers)} expectations hold)")
    notes = []
    for key, label in (("skipped", "skipped"), ("error", "the case raised"), ("diverged_at", "diverged at step")):
        if record.get(key) is not None:
            notes.append(f'<p class="note">{_e(label)}: {_e(record[key])}</p>')
    img = (f'<img src="{_e(src)}" alt="{_e(record["suite"]["id"])} {_e(case.get("id", ""))}: measured against '
           f'predicted" loading="lazy">' if src else "")
    hyper = ", ".join(f"{k}={v}" for k, v in (case.get("hyper") or {}).items())
    table = (_expectation_table(record.get("expectations", []), numbers) if numbers else
             "<p>Nothing asserted on this case (a report-only suite, or no expectation applies).</p>")
    return (f'<figure id="{_e(_slug(record["suite"]["id"] + "--" + case.get("id", "")))}">{img}<figcaption>'
            f"<p>{title}</p>{''.join(notes)}{table}"
            f'<p class="env">{_e(case.get("optimizer", ""))} {_e(hyper)}; seed {_e(case.get("seed", "?"))}; '
            f"{_e(case.get('steps', '?'))} steps; {_environment_line(record.get('environment') or {}, record)}</p>"
            "</figcaption></figure>")


def _sweep_block(record: dict, src: str | None) -> str:
    numbers = expectation_numbers(record)
    img = f'<img src="{_e(src)}" alt="{_e(record["suite"]["id"])} {_e(record["group"])}" loading="lazy">' if src else ""
    return (f'<figure id="{_e(_slug(record["suite"]["id"] + "--" + record["group"]))}">{img}<figcaption>'
            f"<p>{_verdict(record.get('status', '?'))} sweep group <b>{_e(record['group'])}</b> over "
            f"{len(record.get('cases', []))} cases</p>{_expectation_table(record.get('expectations', []), numbers)}"
            "</figcaption></figure>")


def _runs_table(records: list[dict]) -> str:
    runs: dict[str, dict] = {}
    for r in records:
        env = r.get("environment") or {}
        run = runs.setdefault(r.get("run_id", "?"), {"devices": set(), "dtypes": set(), "records": 0, "env": env})
        run["records"] += 1
        if env:
            run["devices"].add(f"{env.get('device')} ({env.get('device_name')})")
            run["dtypes"].add(str(env.get("dtype")))
            run["env"] = run["env"] or env
    head = ("run", "cases", "commit", "torch", "python", "platform", "devices", "dtypes", "matmul precision", "threads",
            "host")
    rows = []
    for run_id, run in sorted(runs.items()):
        env = run["env"]
        git = env.get("git") or {}
        commit = ((git.get("commit") or "?")[:10] + (" (dirty)" if git.get("dirty") else "")) if git else "no git"
        cells = [run_id, run["records"], commit, env.get("torch", "?"), env.get("python", "?"), env.get("platform", "?"),
                 ", ".join(sorted(run["devices"])) or "-", ", ".join(sorted(run["dtypes"])) or "-",
                 env.get("float32_matmul_precision", "?"), env.get("torch_threads", "?"), env.get("hostname", "?")]
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


def _calibration_block(cal: dict) -> str:
    """One suite's calibration (``theory-harness calibrate``): per expectation the nominal
    statistic's spread over the extra seeds, its smallest margin, the false alarms and, per
    deliberate error, in how many runs it fails; then per error the runs caught by any expectation."""
    labels = [k for k in cal["caught"] if k != "nominal"]
    head = ["expectation", "nominal min", "median", "max", "smallest margin", "false alarms",
            *[f"caught {k}" for k in labels]]
    rows = []
    for e in cal["expectations"]:
        n = e["nominal"]
        alarms = f'<span class="{"fail" if n["failed"] else "pass"}">{n["failed"]}/{n["runs"]}</span>'
        cells = [_e(e["expectation"]), _num(n["min"]), _num(n["median"]), _num(n["max"]), _num(n["smallest_margin"]),
                 alarms, *[_e(f'{e["perturbed"][k]["failed"]}/{e["perturbed"][k]["runs"]}') if k in e["perturbed"]
                           else "-" for k in labels]]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    nominal = cal["caught"].get("nominal", {"failed_runs": 0, "runs": 0})
    caught = "".join(f"<li>{_e(k)}: caught in {cal['caught'][k]['failed_runs']} of {cal['caught'][k]['runs']} runs</li>"
                     for k in labels)
    return (f'<section id="calibration-{_e(_slug(cal["suite"]["id"]))}"><h3>{_e(cal["suite"]["id"])}</h3>'
            f'<p class="env">run {_e(cal["run_id"])}, extra seeds {_e(cal["seeds"])}; nominal runs failing '
            f'(false alarms): {nominal["failed_runs"]} of {nominal["runs"]}; <code>{_e(cal.get("_path", ""))}</code></p>'
            "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"
            + (f"<ul>{caught}</ul>" if caught else "") + "</section>")


def build_report(paths: list[str | Path], out: str | Path, title: str = "theory-harness report") -> Report:
    """Read the records under ``paths`` (each checked against the record schema) and write
    ``out/index.html`` with its figures; ``out`` must be a writable folder (checked first)."""
    writable_folder(out, "--out")
    found = read_records(*paths, schemas=(RECORD_SCHEMA, SWEEP_SCHEMA, CALIBRATION_SCHEMA))  # one pass over the files
    calibrations = newest_calibrations(found)
    records = latest([r for r in found if r["schema"] != CALIBRATION_SCHEMA])
    cases = [r for r in records if r["schema"] == RECORD_SCHEMA]
    sweeps = [r for r in records if r["schema"] == SWEEP_SCHEMA]
    if not cases and not calibrations:
        raise HarnessError(f"no result records under {', '.join(map(str, paths))}")
    out = Path(out)
    report = Report(index=out / "index.html")
    by_suite: dict[str, dict] = {}
    for r in sorted(cases, key=lambda r: (r["suite"]["id"], r["case"]["id"])):
        by_suite.setdefault(r["suite"]["id"], {"suite": r["suite"], "cases": [], "sweeps": []})["cases"].append(r)
    for r in sorted(sweeps, key=lambda r: (r["suite"]["id"], r["group"])):
        if r["suite"]["id"] in by_suite:
            by_suite[r["suite"]["id"]]["sweeps"].append(r)

    def save(png: bytes | None, suite_id: str, name: str) -> str | None:
        if png is None:
            return None
        rel = Path("figures") / _slug(suite_id) / f"{_slug(name)}.png"
        report.figures.append(write_bytes_replacing(out / rel, png))
        return quote(rel.as_posix())

    sections, failures, toc = [], [], []
    for suite_id, group in by_suite.items():
        suite = group["suite"]
        blocks = []
        for r in group["cases"]:
            report.cases += 1
            status = r.get("status")
            report.failed += status == "failed"
            report.skipped += status == "skipped"
            if status == "failed":
                failures.append((suite_id, r["case"]["id"]))
            blocks.append(_case_block(r, save(case_figure(r), suite_id, r["case"]["id"])))
        for r in group["sweeps"]:
            axis = r["group"].split("-", 1)[0].removeprefix("across=")
            values = {c["case"]["id"]: (c["case"].get("params") or {}).get(axis) for c in group["cases"]}
            values = {k: v for k, v in values.items() if isinstance(v, (int, float))}
            if r.get("status") == "failed":
                failures.append((suite_id, r["group"]))
            blocks.append(_sweep_block(r, save(sweep_figure(r, values, axis), suite_id, "sweep-" + r["group"])))
        n_fail = sum(r.get("status") == "failed" for r in group["cases"] + group["sweeps"])
        n_skip = sum(r.get("status") == "skipped" for r in group["cases"])
        toc.append(f'<li><a href="#{_e(_slug(suite_id))}">{_e(suite_id)}</a>: {len(group["cases"])} cases'
                   + (f', <span class="fail">{n_fail} failed</span>' if n_fail else "")
                   + (f', <span class="skip">{n_skip} skipped</span>' if n_skip else "") + "</li>")
        calibrated = next((c for c in calibrations if c["suite"]["id"] == suite_id), None)
        sections.append(
            f'<section id="{_e(_slug(suite_id))}"><h2>{_e(suite_id)} '
            f"{_verdict('failed' if n_fail else 'passed')}</h2>"
            f'<p class="claim">{_e(suite.get("claim", ""))}</p><p class="env">source: {_e(suite.get("source", ""))}; '
            f"file <code>{_e(suite.get('file', ''))}</code> (sha256 {_e(str(suite.get('sha256', ''))[:12])})"
            + (f'; <a href="#calibration-{_e(_slug(suite_id))}">calibration</a>' if calibrated else "") + "</p>"
            + "".join(blocks) + "</section>")
    fail_list = "".join(f'<li><a href="#{_e(_slug(s + "--" + c))}">{_e(s)} [{_e(c)}]</a></li>' for s, c in failures)
    passed = report.cases - report.failed - report.skipped
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
        f"<p>{report.cases} cases: <span class=\"pass\">{passed} passed</span>, "
        f"<span class=\"fail\">{report.failed} failed</span>, <span class=\"skip\">{report.skipped} skipped</span>; "
        f"{len(sweeps)} sweep groups. Generated {generated} from {_e(', '.join(map(str, paths)))}.</p>"
        "<p class=\"env\">In each figure: the measured trajectory (blue), the predictions evaluated at every "
        "step (dashed), each expectation's window shaded and numbered as in its table (green: holds, red: "
        "fails), the accepted region of the statistic in the measure's units (dotted), thresholds (dash-dot) "
        "and predicted steps with their tolerance (hatched).</p>"
        + (f"<h2>Failures</h2><ul>{fail_list}</ul>" if failures else "")
        + f"<h2>Runs</h2>{_runs_table(records)}<h2>Suites</h2><ul>{''.join(toc)}</ul>" + "".join(sections)
        + (("<h2>Calibrations</h2><p class=\"env\">From <code>theory-harness calibrate</code>: each suite's cases "
            "over extra seeds, nominally and under deliberate errors (a step size 10 % off, a scaled prediction "
            "or kernel). A false alarm is a nominal run that fails; an error is caught in a run where the "
            "expectation fails.</p>" + "".join(_calibration_block(c) for c in calibrations)) if calibrations else "")
        + "</body></html>")
    write_bytes_replacing(report.index, page.encode("utf-8"))
    return report
