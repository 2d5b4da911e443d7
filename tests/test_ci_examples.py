"""The example CI workflows in docs/ci use only the README's commands and keep the report and
the records as artifacts."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "docs" / "ci").glob("*.yml"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _runs(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^\s*-?\s*run:\s*(.+)$", text, flags=re.M)]


def test_there_is_a_cpu_and_a_gpu_example():
    assert {p.name for p in WORKFLOWS} == {"cpu.yml", "gpu.yml"}
    assert "runs-on: ubuntu-latest" in (ROOT / "docs/ci/cpu.yml").read_text()
    assert "self-hosted" in (ROOT / "docs/ci/gpu.yml").read_text()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_command_is_a_readme_command(workflow):
    runs = _runs(workflow.read_text(encoding="utf-8"))
    assert runs, f"{workflow}: no run: steps"
    missing = [r for r in runs if r not in README]
    assert not missing, f"{workflow.name}: commands not in the README: {missing}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_report_and_records_are_uploaded(workflow):
    text = workflow.read_text(encoding="utf-8")
    assert "actions/upload-artifact" in text
    for upload in re.findall(r"uses: actions/upload-artifact@\S+\n(?:\s+.+\n)+", text):
        assert "report/" in upload and "results/" in upload
    assert any("theory-harness report" in r for r in _runs(text))
    assert any("pytest -n auto" in r for r in _runs(text))
