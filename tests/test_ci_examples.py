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


def test_the_examples_are_one_cpu_workflow_plus_one_gpu_workflow():
    assert {p.name for p in WORKFLOWS} == {"cpu.yml", "gpu.yml"}


def test_the_cpu_example_runs_on_a_hosted_runner():
    assert "runs-on: ubuntu-latest" in (ROOT / "docs/ci/cpu.yml").read_text()


def test_the_gpu_example_runs_on_a_self_hosted_runner():
    assert "self-hosted" in (ROOT / "docs/ci/gpu.yml").read_text()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_command_is_a_readme_command(workflow):
    runs = _runs(workflow.read_text(encoding="utf-8"))
    assert runs, f"{workflow}: no run: steps"
    missing = [r for r in runs if r not in README]
    assert not missing, f"{workflow.name}: commands not in the README: {missing}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_upload_keeps_the_report_with_the_records(workflow):
    text = workflow.read_text(encoding="utf-8")
    assert "actions/upload-artifact" in text
    for upload in re.findall(r"uses: actions/upload-artifact@\S+\n(?:\s+.+\n)+", text):
        assert "report/" in upload and "results/" in upload


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_the_workflow_builds_the_report(workflow):
    assert any("theory-harness report" in r for r in _runs(workflow.read_text(encoding="utf-8")))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_the_workflow_runs_the_suites_with_pytest_xdist(workflow):
    assert any("pytest -n auto" in r for r in _runs(workflow.read_text(encoding="utf-8")))
