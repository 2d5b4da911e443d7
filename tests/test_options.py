"""Typed option tables (mirrors harness/options.py): build, coerce and check_keys raise a
SuiteError naming the file and the key path."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from harness import SuiteError
from harness.options import build, check_keys, coerce, describe, nonnegative, positive, unit_interval

FILE = "suite.toml"


@dataclass(frozen=True)
class Options:
    lr: float = field(metadata=positive)
    steps: int = 10
    widths: list[int] = field(default_factory=lambda: [4], metadata=positive)
    momentum: float = field(default=0.0, metadata=unit_interval)
    decay: float = field(default=0.0, metadata=nonnegative)
    mode: Literal["fast", "slow"] = "fast"
    flag: bool = False
    chunk: int | None = field(default=None, metadata=positive)
    name: str = "x"

    def __post_init__(self):
        if self.mode == "slow" and self.steps > 100:
            raise ValueError("mode 'slow' takes at most 100 steps")


def raises(table, **kwargs) -> SuiteError:
    with pytest.raises(SuiteError) as info:
        build(Options, table, FILE, "optimizer", **kwargs)
    return info.value


def test_build_fills_defaults():
    assert build(Options, {"lr": 0.5}, FILE, "optimizer") == Options(lr=0.5)


def test_build_accepts_an_integer_for_a_float():
    opts = build(Options, {"lr": 1}, FILE, "optimizer")
    assert opts.lr == 1.0 and type(opts.lr) is float


def test_build_reads_every_given_key():
    table = {"lr": 0.1, "steps": 50, "widths": [3, 2], "momentum": 0.9, "decay": 0.0, "mode": "slow",
             "flag": True, "chunk": 8, "name": "y"}
    assert build(Options, table, FILE, "optimizer") == Options(0.1, 50, [3, 2], 0.9, 0.0, "slow", True, 8, "y")


def test_build_ignores_skipped_keys():
    assert build(Options, {"kind": "gd", "lr": 0.5}, FILE, "optimizer", skip=("kind",)) == Options(lr=0.5)


def test_wrong_type_error_locates_the_key():
    err = raises({"lr": 0.1, "steps": "ten"})
    assert (err.file, err.key) == (FILE, "optimizer.steps")
    assert "expected an integer" in err.message and "'ten'" in err.message


def test_error_message_starts_with_the_location():
    assert str(raises({"lr": 0.1, "steps": "ten"})).startswith(f"{FILE}: optimizer.steps: ")


def test_bool_is_not_an_integer():
    assert raises({"lr": 0.1, "steps": True}).key == "optimizer.steps"


def test_integer_is_not_a_bool():
    assert raises({"lr": 0.1, "flag": 1}).key == "optimizer.flag"


def test_non_finite_float_is_rejected():
    err = raises({"lr": float("inf")})
    assert err.key == "optimizer.lr" and "finite" in err.message


def test_wrong_list_element_type_names_its_index():
    err = raises({"lr": 0.1, "widths": [3, "two"]})
    assert err.key == "optimizer.widths[1]"


def test_unknown_key_names_its_path():
    err = raises({"lr": 0.1, "stpes": 5})
    assert err.key == "optimizer.stpes" and "unknown key" in err.message


def test_unknown_key_suggests_the_closest_allowed_key():
    assert "(did you mean 'steps'?)" in raises({"lr": 0.1, "stpes": 5}).message


def test_unknown_key_lists_the_allowed_keys():
    assert "'momentum'" in raises({"lr": 0.1, "stpes": 5}).message


def test_literal_outside_its_choices_suggests_one():
    err = raises({"lr": 0.1, "mode": "fsat"})
    assert err.key == "optimizer.mode" and "(did you mean 'fast'?)" in err.message


def test_positive_range_check_names_the_key():
    err = raises({"lr": 0.0})
    assert err.key == "optimizer.lr" and "expected a number > 0" in err.message


def test_nonnegative_range_check_names_the_key():
    err = raises({"lr": 0.1, "decay": -1e-3})
    assert err.key == "optimizer.decay" and "expected a number >= 0" in err.message


def test_unit_interval_excludes_one():
    err = raises({"lr": 0.1, "momentum": 1.0})
    assert err.key == "optimizer.momentum" and "[0, 1)" in err.message


def test_unit_interval_includes_zero():
    assert build(Options, {"lr": 0.1, "momentum": 0}, FILE, "optimizer").momentum == 0.0


def test_range_check_of_a_list_names_the_element():
    err = raises({"lr": 0.1, "widths": [3, 0]})
    assert err.key == "optimizer.widths[1]" and "expected a number > 0" in err.message


def test_range_check_of_an_optional_value_skips_none():
    assert build(Options, {"lr": 0.1, "chunk": None}, FILE, "optimizer").chunk is None


def test_range_check_of_an_optional_value_applies_to_a_number():
    assert raises({"lr": 0.1, "chunk": -2}).key == "optimizer.chunk"


def test_missing_required_key_names_it():
    err = raises({"steps": 3})
    assert err.key == "optimizer.lr" and "missing" in err.message


def test_post_init_error_names_the_table():
    err = raises({"lr": 0.1, "mode": "slow", "steps": 500})
    assert err.key == "optimizer" and "at most 100 steps" in err.message


def test_non_table_is_rejected():
    err = raises([1, 2])
    assert err.key == "optimizer" and "expected a table" in err.message


def test_top_level_key_path_has_no_leading_dot():
    with pytest.raises(SuiteError) as info:
        build(Options, {"lr": -1.0}, FILE, "")
    assert info.value.key == "lr"


def test_from_table_classmethod_builds_itself():
    @dataclass(frozen=True)
    class Custom:
        x: int = 0

        @classmethod
        def from_table(cls, table, file, path, skip):
            return ("custom", dict(table), file, path, skip)

    assert build(Custom, {"y": 1}, FILE, "problem", skip=("kind",)) == ("custom", {"y": 1}, FILE, "problem", ("kind",))


def test_fields_only_bypasses_from_table():
    @dataclass(frozen=True)
    class Custom:
        x: int = 0

        @classmethod
        def from_table(cls, table, file, path, skip):
            raise AssertionError("from_table must not be called")

    assert build(Custom, {"x": 2}, FILE, "problem", fields_only=True) == Custom(2)


def test_check_keys_accepts_allowed_keys():
    check_keys({"a": 1, "b": 2}, ["a", "b", "c"], FILE, "run")


def test_check_keys_rejects_an_unknown_key_with_a_suggestion():
    with pytest.raises(SuiteError) as info:
        check_keys({"stesp": 1}, ["steps", "seed"], FILE, "run")
    assert info.value.key == "run.stesp" and "(did you mean 'steps'?)" in info.value.message


def test_coerce_returns_a_tuple_for_a_tuple_annotation():
    assert coerce([1, 2], tuple[int, ...], FILE, "x") == (1, 2)


def test_coerce_of_a_union_tries_each_member():
    assert coerce("a", int | str, FILE, "x") == "a"


def test_coerce_of_a_union_reports_every_member():
    with pytest.raises(SuiteError) as info:
        coerce(1.5, int | str, FILE, "x")
    assert info.value.key == "x" and "an integer or a string" in info.value.message


def test_coerce_rejects_a_non_list_for_a_list():
    with pytest.raises(SuiteError, match="expected a list of an integer"):
        coerce(3, list[int], FILE, "widths")


def test_coerce_of_a_bare_list_accepts_anything_inside():
    assert coerce([1, "a", None], list, FILE, "x") == [1, "a", None]


def test_describe_names_a_literal():
    assert describe(Literal["a", "b"]) == "one of 'a', 'b'"


def test_describe_drops_none_from_an_optional():
    assert describe(int | None) == "an integer"
