"""The oldest-versions CI job (.ci/run, job 2) pins exactly the lower bounds pyproject.toml allows."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lower_bounds() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for spec in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*).*", spec)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def _oldest_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "oldest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3]) + (0,) * (3 - len(re.findall(r"\d+", version)[:3]))


def test_the_oldest_job_pins_every_lower_bound_but_torch():
    bounds, pins = _lower_bounds(), _oldest_pins()
    # torch is the one exception: these machines install only the 2.13.0 CPU build from local disk
    expected = {name for name in bounds if name != "torch"}
    assert set(pins) == expected, f"pinned {sorted(pins)}, bounded {sorted(expected)}"
    for name in expected:
        assert _release(pins[name]) == _release(bounds[name]), f"{name}: pinned {pins[name]}, allowed >= {bounds[name]}"


def test_ci_runs_the_readme_test_command_verbatim_in_a_fresh_environment():
    readme = (ROOT / "README.md").read_text().splitlines()
    command = next(line for line in readme if "pytest" in line and line.startswith("pip install"))
    command = command.split("#", 1)[0].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"\n{command}\n" in ci, f"the README's test command {command!r} is not a line of .ci/run"
    assert "python3 -m venv" in ci and ci.index("python3 -m venv") < ci.index(f"\n{command}\n")
