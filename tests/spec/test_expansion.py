"""The suite format's shorthand (harness/spec/expansion.py): [sweep] axes over any section, [[sweep]]
blocks, for_each templates, the old form's deprecation, and compare's renamed cases."""

import pytest

from harness import SuiteError, expand, load_suite, run_case
from harness.cli import main
from harness.output.compare import compare
from harness.spec.expansion import substitute
from harness.spec.reader import update_rule
from harness.output.records import case_record

from suite_text import VALID, write

NEW = VALID.replace("lr = [0.1, 0.2]\n", "").replace(
    "[run]\nsteps = 60\n", '[run]\nsteps = 60\n\n[sweep]\n"optimizer.lr" = [0.1, 0.2]\n')


def test_the_new_form_reads_as_the_old_one(tmp_path):
    old, new = load_suite(write(tmp_path, VALID, "old.toml")), load_suite(write(tmp_path, NEW, "new.toml"))
    assert old.deprecated and "[sweep]" in old.deprecated and new.deprecated is None
    assert [c.id for c in expand(old)] == [c.id for c in expand(new)]
    assert [c.hyper for c in expand(old)] == [c.hyper for c in expand(new)] == [{"lr": 0.1}] * 2 + [{"lr": 0.2}] * 2 \
        + [{"lr": 0.1}] * 2 + [{"lr": 0.2}] * 2


@pytest.fixture(scope="module")
def zip_cases(tmp_path_factory):
    """The CPU cases of a zip sweep over problem.eigenvalues, optimizer.lr and run.steps, named by lr."""
    text = NEW.replace('eigenvalues = [4.0, 1.0, 0.5]\n', '').replace(
        "[run]\nsteps = 60\n", "[run]\n").replace(
        '"optimizer.lr" = [0.1, 0.2]', 'mode = "zip"\n"problem.eigenvalues" = [[4.0, 1.0], [8.0, 1.0]]\n'
        '"optimizer.lr" = [0.1, 0.2]\n"run.steps" = [60, 80]\nid = ["lr"]')
    s = load_suite(write(tmp_path_factory.mktemp("zip"), text))
    return expand(s, ["cpu"])


@pytest.fixture(scope="module")
def second_variant_result(zip_cases):
    return run_case(zip_cases[2])  # the variant trains: 80 steps on the second spectrum


def test_a_zip_sweep_names_its_cases_by_the_id_axes(zip_cases):
    assert [c.id for c in zip_cases] == ["lr=0.1-seed=0-cpu", "lr=0.1-seed=1-cpu", "lr=0.2-seed=0-cpu",
                                         "lr=0.2-seed=1-cpu"]


def test_axes_over_any_section_make_variants_of_the_suite(zip_cases):
    assert [(c.suite.steps, c.suite.problem.eigenvalues, c.hyper["lr"]) for c in zip_cases[::2]] == \
        [(60, [4.0, 1.0], 0.1), (80, [8.0, 1.0], 0.2)]


def test_a_variant_trains_with_its_own_settings(second_variant_result):
    r = second_variant_result
    assert r.last_step == 80 and r.trajectories["lambda_max"]["values"][0] == pytest.approx(8.0)


def test_a_variants_record_lists_its_swept_values(second_variant_result):
    assert case_record(second_variant_result, "x")["case"]["params"] == {"eigenvalues": [8.0, 1.0], "lr": 0.2,
                                                                          "steps": 80}


def _blocks_suite(tmp_path):
    """Two [[sweep]] blocks, one over gd, one over heavy_ball with two momenta, predicting "{kind}_edge"."""
    text = NEW.replace('kind = "gd"\n', "").replace('[sweep]\n"optimizer.lr" = [0.1, 0.2]\n',
        '[[sweep]]\n"optimizer.kind" = ["gd"]\n"optimizer.lr" = [0.1]\n\n'
        '[[sweep]]\n"optimizer.kind" = ["heavy_ball"]\n"optimizer.lr" = [0.1]\n"optimizer.momentum" = [0.5, 0.9]\n'
    ).replace('predict = "gd_edge"', 'predict = "{kind}_edge"')
    return load_suite(write(tmp_path, text))


def test_sweep_blocks_give_the_cases_of_each_block_in_turn(tmp_path):
    cases = expand(_blocks_suite(tmp_path), ["cpu"])
    assert [c.id for c in cases if c.seed == 0] == [
        "kind=gd-lr=0.1-seed=0-cpu", "kind=heavy_ball-lr=0.1-momentum=0.5-seed=0-cpu",
        "kind=heavy_ball-lr=0.1-momentum=0.9-seed=0-cpu"]


def test_a_swept_kind_is_substituted_in_a_prediction(tmp_path):
    cases = expand(_blocks_suite(tmp_path), ["cpu"])
    assert [c.suite.expectations[0].predict for c in cases if c.seed == 0] == ["gd_edge", "heavy_ball_edge",
                                                                              "heavy_ball_edge"]


def test_the_suites_sweep_lists_each_axis_over_all_blocks(tmp_path):
    s = _blocks_suite(tmp_path)
    assert s.sweep == {"kind": ["gd", "heavy_ball"], "lr": [0.1], "momentum": [0.5, 0.9]}


def test_for_each_writes_one_table_per_position(tmp_path):
    text = NEW + '''
[measures."top_{i}"]
for_each = { i = [1, 2] }
kind = "lambda_max"
every = "{every}"
'''.replace('"{every}"', "30") + '''
[events."loss_below_{k}"]
for_each = { k = ["a", "b"], level = [1e-2, 1e-3] }
measure = "loss"
below = "{level}"

[[expect]]
for_each = { k = ["a", "b"] }
name = "reaches_{k}"
why = "event {k}"
measure = "loss"
statistic = "last"
check = "le"
bound = 1.0
window = { anchor = "loss_below_{k}" }
'''
    s = load_suite(write(tmp_path, text))
    assert {"top_1", "top_2"} <= set(s.measures) and s.measures["top_2"].every == 30
    assert (s.events["loss_below_b"].below, s.events["loss_below_a"].below) == (1e-3, 1e-2)
    named = {e.name: e for e in s.expectations}
    assert named["reaches_b"].window.anchor == "loss_below_b" and named["reaches_b"].why == "event b"


def test_substitute_fills_only_its_own_placeholders_keeping_their_types():
    assert substitute({"index": "{r}", "name": "p{r}", "x": "{other} {r}", "l": ["{r}"]}, {"r": 3}) == \
        {"index": 3, "name": "p3", "x": "{other} 3", "l": [3]}


def _no_steps(text):
    return text.replace("[run]\nsteps = 60\n", "[run]\n")


@pytest.mark.parametrize("edit,key,phrase", [
    (lambda t: t.replace('"optimizer.lr"', '"optimiser.lr"'), 'sweep.optimiser.lr', "SECTION one of"),
    (lambda t: t.replace('"optimizer.lr" = [0.1, 0.2]', '"optimizer.lr" = []'), "sweep.optimizer.lr", "non-empty"),
    (lambda t: t.replace('"optimizer.lr" = [0.1, 0.2]', '"optimizer.lr" = [0.1, 0.1]'), "sweep.optimizer.lr",
     "distinct"),
    (lambda t: t.replace('kind = "gd"\n', 'kind = "gd"\nlr = 0.3\n'), "sweep.optimizer.lr", "not both"),
    (lambda t: t.replace('kind = "gd"\n', 'kind = "gd"\nsweep = "zip"\n'), "optimizer.sweep", "sweep.mode"),
    (lambda t: _no_steps(t).replace('"optimizer.lr" = [0.1, 0.2]', 'mode = "zip"\n"optimizer.lr" = [0.1, 0.2]\n"run.steps" = [5]'),
     "sweep.mode", "same length"),
    (lambda t: t.replace('"optimizer.lr" = [0.1, 0.2]', '"optimizer.lr" = [0.1, 0.2]\nid = ["lr"]'), "sweep.id",
     "only a zip"),
    (lambda t: _no_steps(t).replace('"optimizer.lr" = [0.1, 0.2]', 'mode = "zip"\n"optimizer.lr" = [0.1, 0.2]\n'
                         '"run.steps" = [10, 20]\nid = ["steps", "depth"]'), "sweep.id[1]", "an axis of this sweep"),
    (lambda t: _no_steps(t).replace('"optimizer.lr" = [0.1, 0.2]', 'mode = "zip"\n"optimizer.lr" = [0.1, 0.1]\n'
                         '"run.steps" = [10, 20]\nid = ["lr"]'), "sweep.id", "differ"),
    (lambda t: t.replace('"optimizer.lr" = [0.1, 0.2]', '"optimizer.lr" = [0.1, -0.2]'), "sweep.optimizer.lr", ""),
    (lambda t: t.replace("eigenvalues = [4.0, 1.0, 0.5]\n", "").replace(
        '"optimizer.lr" = [0.1, 0.2]', '"optimizer.lr" = [0.1, 0.2]\n"problem.eigenvalues" = [[1.0], "x"]'),
     "problem.eigenvalues",
     "sweep point"),
    (lambda t: t + '\n[measures.m]\nfor_each = { r = [1, 2] }\nkind = "loss"\n', "measures.m", "placeholder"),
    (lambda t: t + '\n[measures."m{r}"]\nfor_each = { r = [1, 2], s = [1] }\nkind = "loss"\n', "measures.m{r}.for_each",
     "same length"),
    (lambda t: t + '\n[measures."m{r}"]\nfor_each = { r = 3 }\nkind = "loss"\n', "measures.m{r}.for_each.r",
     "non-empty list"),
    (lambda t: t + '\n[[expect]]\nfor_each = { r = [1, 2] }\nname = "e{r}"\nmeasure = "loss"\nstatistic = "last"\n'
                   'check = "le"\nbound = 1.0\nwindow = { anchor = "nowhere{r}" }\n', "expect[3] (r=1).window.anchor",
     "expected 'start', 'end' or an event"),
    (lambda t: t + '\n[[expect]]\nfor_each = { r = [1, 2] }\nname = "same"\nmeasure = "loss"\nstatistic = "last"\n'
                   'check = "le"\nbound = 1.0\n', "expect", "distinct"),
])
def test_malformed_shorthand_is_exit_2_naming_the_key_path(tmp_path, capsys, edit, key, phrase):
    path = write(tmp_path, edit(NEW))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert (err.value.file, err.value.key) == (str(path), key), str(err.value)
    assert phrase in err.value.message, str(err.value)
    assert main(["list", str(path)]) == 2
    assert f"{path}: {key}" in capsys.readouterr().err


def test_the_old_form_runs_with_a_deprecation_message(tmp_path, capsys):
    path = write(tmp_path, VALID)
    assert main(["list", str(path)]) == 0
    err = capsys.readouterr().err
    assert "deprecated" in err and '"optimizer.lr" = [...]' in err and "optimizer" in err
    assert main(["list", str(write(tmp_path, NEW, "new.toml"))]) == 0
    assert "deprecated" not in capsys.readouterr().err


def test_adam_betas_is_a_value_with_a_sweep_table(tmp_path):
    text = NEW.replace('kind = "gd"\n', 'kind = "torch_optim"\nclass = "torch.optim.Adam"\nbetas = [0.9, 0.99]\n')
    text = text[:text.index("[[expect]]")]
    text = text.replace("slow = false", "slow = false\nreport_only = true")
    s = load_suite(write(tmp_path, text))
    assert [update_rule(c.suite).kwargs["betas"] for c in expand(s, ["cpu"])][:2] == [(0.9, 0.99)] * 2


def _records(tmp_path, name, text, file):
    out = tmp_path / name
    assert main(["run", str(write(tmp_path, text, file)), "--out", str(out), "--device", "cpu"]) in (0, 1)
    return out


def test_compare_explains_a_renamed_case(tmp_path, capsys):
    base_text = VALID.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu"]').replace("seeds = [0, 1]", "seeds = [0]")
    base = _records(tmp_path, "base", base_text, "a.toml")
    # the same runs under another suite id, with an axis that now shows in the ids
    head_text = base_text.replace('id = "test.tiny"', 'id = "test.merged"').replace("lr = [0.1, 0.2]\n", "").replace(
        "[run]\nsteps = 60\n", '[run]\n\n[sweep]\n"optimizer.lr" = [0.1, 0.2]\n"run.steps" = [60]\n')
    head = _records(tmp_path, "head", head_text, "b.toml")
    rows = compare(base, head)
    assert rows and all(r.flag == "" for r in rows), [(r.case, r.expectation, r.flag) for r in rows]
    assert {(r.case, r.was) for r in rows} == {("lr=0.1-steps=60-seed=0-cpu", "test.tiny/lr=0.1-seed=0-cpu"),
                                                ("lr=0.2-steps=60-seed=0-cpu", "test.tiny/lr=0.2-seed=0-cpu")}
    assert main(["compare", str(base), str(head)]) == 0
    assert "(was test.tiny/lr=0.1-seed=0-cpu)" in capsys.readouterr().out
    # a suite that repeated another's runs, merged away: MERGED, compared with the run that remains
    write(tmp_path, base_text.replace('id = "test.tiny"', 'id = "test.dup"'), "dup.toml")
    both = tmp_path / "both"
    assert main(["run", str(tmp_path / "a.toml"), str(tmp_path / "dup.toml"), "--out", str(both)]) == 0
    rows = compare(both, head)
    merged = [r for r in rows if r.flag == "MERGED"]
    renamed_from = {r.was.split("/")[0] for r in rows if r.was}
    assert merged and all(r.change == 0 for r in merged)
    assert len(renamed_from) == 1 and {r.suite for r in merged} == {"test.dup", "test.tiny"} - renamed_from
    assert {r.into for r in merged} == {"test.merged/lr=0.1-steps=60-seed=0-cpu", "test.merged/lr=0.2-steps=60-seed=0-cpu"}
    assert {r.flag for r in rows} == {"", "MERGED"}
    # a different run is not a rename: GONE and NEW
    other = _records(tmp_path, "other", head_text.replace('"run.steps" = [60]', '"run.steps" = [70]'), "c.toml")
    flags = {r.flag for r in compare(base, other)}
    assert flags == {"GONE", "NEW"} and not any(r.was for r in compare(base, other))
