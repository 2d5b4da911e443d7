"""Name -> object registries and import paths (mirrors harness/registry.py)."""

import collections

import pytest
import torch

from harness.kernels.losses import mse
from harness.registry import Registry, is_import_path, resolve_dotted, resolve_import_path, suggest


def widget_registry():
    reg = Registry("widget")

    @reg.register("alpha")
    def alpha():
        return 1

    @reg.register("beta")
    def beta():
        return 2

    return reg, alpha, beta


def test_register_returns_the_object_unchanged():
    reg = Registry("widget")
    fn = lambda: 0  # noqa: E731
    assert reg.register("a")(fn) is fn


def test_registered_name_looks_up_its_object():
    reg, alpha, _ = widget_registry()
    assert reg["alpha"] is alpha


def test_registered_name_is_contained():
    reg, _, _ = widget_registry()
    assert "alpha" in reg


def test_iteration_is_sorted_by_name():
    reg = Registry("widget")
    for name in ("c", "a", "b"):
        reg.register(name)(object())
    assert list(reg) == ["a", "b", "c"]


def test_registering_a_name_twice_is_an_error():
    reg, _, _ = widget_registry()
    with pytest.raises(ValueError, match="widget 'alpha' is registered twice"):
        reg.register("alpha")(object())


def test_unknown_name_is_not_contained():
    reg, _, _ = widget_registry()
    assert "gamma" not in reg


def test_non_string_is_not_contained():
    reg, _, _ = widget_registry()
    assert 3 not in reg


def test_unknown_name_raises_key_error_naming_the_kind():
    reg, _, _ = widget_registry()
    with pytest.raises(KeyError) as info:
        reg["gamma"]
    assert "widget" in str(info.value) and "gamma" in str(info.value)


def test_unknown_name_message_suggests_the_closest_name():
    reg, _, _ = widget_registry()
    assert "(did you mean 'alpha'?)" in reg.unknown("alpha_")


def test_unknown_name_message_lists_the_known_names():
    reg, _, _ = widget_registry()
    message = reg.unknown("zzz")
    assert "alpha" in message and "beta" in message


def test_import_path_resolves_when_it_fits_the_protocol():
    reg = Registry("loss")
    assert reg["harness.kernels.losses:mse"] is mse


def test_import_path_that_lacks_the_protocol_is_unknown():
    reg = Registry("loss")
    assert "math:pi" not in reg
    assert "cannot be used as a loss" in reg.unknown("math:pi")


def test_import_path_to_a_missing_module_says_which():
    reg = Registry("loss")
    assert "no_such_pkg_3f9:fn" not in reg
    assert "no module named 'no_such_pkg_3f9'" in reg.unknown("no_such_pkg_3f9:fn")


def test_suggest_finds_a_close_name():
    assert suggest("lamda_max", ["lambda_max", "loss"]) == " (did you mean 'lambda_max'?)"


def test_suggest_falls_back_to_a_prefix():
    assert suggest("lambda", ["lambda_max_of_the_gauss_newton_matrix"]) == \
        " (did you mean 'lambda_max_of_the_gauss_newton_matrix'?)"


def test_suggest_returns_nothing_without_a_match():
    assert suggest("qqq", ["lambda_max", "loss"]) == ""


@pytest.mark.parametrize("name", ["pkg.mod:Name", "pkg:Outer.Inner", "a:b"])
def test_is_import_path_accepts_module_colon_name(name):
    assert is_import_path(name)


@pytest.mark.parametrize("name", ["mlp", "pkg.mod.Name", "pkg.mod:", ":Name", "pkg mod:Name", 3])
def test_is_import_path_rejects_other_forms(name):
    assert not is_import_path(name)


def test_resolve_dotted_reads_a_colon_path():
    assert resolve_dotted("harness.registry:Registry") is Registry


def test_resolve_dotted_reads_a_nested_attribute_after_the_colon():
    assert resolve_dotted("collections:OrderedDict.fromkeys") == collections.OrderedDict.fromkeys


def test_resolve_dotted_reads_a_dotted_path():
    assert resolve_dotted("torch.optim.SGD") is torch.optim.SGD


def test_resolve_dotted_missing_attribute_raises_lookup_error():
    with pytest.raises(LookupError, match="has no attribute 'SDG'.*did you mean 'SGD'"):
        resolve_dotted("torch.optim.SDG")


def test_resolve_dotted_missing_module_raises_lookup_error():
    with pytest.raises(LookupError, match="no module named 'no_such_pkg_3f9'"):
        resolve_dotted("no_such_pkg_3f9.mod.Name")


def test_resolve_dotted_rejects_a_bare_name():
    with pytest.raises(LookupError, match="expected 'package.module:Name' or 'package.module.Name'"):
        resolve_dotted("SGD")


def test_resolve_import_path_rejects_a_dotted_path():
    with pytest.raises(LookupError, match="expected an import path"):
        resolve_import_path("torch.optim.SGD")
