"""A new check kind is one class in harness/spec/checks.py's registry: the suite reader learns
its keys from it, and the runner judges with it (issue 14: "a new check is one class in one place")."""

from dataclasses import dataclass
from typing import ClassVar

import pytest

from harness import SuiteError, expand, load_suite, run_case
from harness.spec.checks import CHECKS, Check, Key, Outcome, _unused
from suite_text import VALID, write


@dataclass(frozen=True)
class WithinFactor(Check):
    """``target / factor <= x <= target * factor`` (a toy kind for this test)."""

    target: float
    factor: float
    kind: ClassVar[str] = "within_factor"
    keys: ClassVar[tuple[Key, ...]] = (Key("factor", float, "positive"),)

    @classmethod
    def from_keys(cls, keys, file, path, default_target=None):
        if keys.get("factor") is None:
            raise SuiteError(file, f"{path}.factor", "missing; check 'within_factor' needs it")
        _unused(keys, cls, file, path)
        return cls(default_target.value, keys["factor"])

    def evaluate(self, x, resolve):
        lo, hi = self.target / self.factor, self.target * self.factor
        return Outcome(lo <= x <= hi, min(x - lo, hi - x), f"within x{self.factor:g} of {self.target:g}", (lo, hi))


@pytest.fixture
def within_factor(monkeypatch):
    monkeypatch.setitem(CHECKS, "within_factor", WithinFactor)


def _suite(tmp_path, factor: str):
    text = VALID.replace('check = "le"\nbound = 0.9', f'check = "within_factor"\nfactor = {factor}')
    return load_suite(write(tmp_path, text.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]')))


def test_a_registered_kind_is_read_from_the_suite(tmp_path, within_factor):
    s = _suite(tmp_path, "1e6")
    assert s.expectations[0].kind == "within_factor" and s.expectations[0].check.factor == 1e6


def test_a_registered_kind_judges_the_run(tmp_path, within_factor):
    v = run_case(expand(_suite(tmp_path, "1e6"), ["cpu"])[0]).verdicts[0]
    assert v.check == "within_factor" and v.passed and v.tolerance.startswith("within x1e+06")


def test_its_keys_are_validated_by_the_reader(tmp_path, within_factor):
    with pytest.raises(SuiteError) as err:
        _suite(tmp_path, "-2")
    assert err.value.key == "expect[0].factor"


def test_without_the_class_its_keys_are_unknown(tmp_path):
    with pytest.raises(SuiteError) as err:
        _suite(tmp_path, "2")
    assert err.value.key == "expect[0].factor" and "unknown key" in err.value.message


def test_without_the_class_its_name_is_unknown(tmp_path):
    text = VALID.replace('check = "le"\nbound = 0.9', 'check = "within_factor"')
    with pytest.raises(SuiteError) as err:
        load_suite(write(tmp_path, text))
    assert err.value.key == "expect[0].check"
