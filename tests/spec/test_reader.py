import pytest

from harness import SuiteError, load_suite
from suite_text import VALID, write


def test_valid_suite_loads(tmp_path):
    s = load_suite(write(tmp_path))
    assert s.id == "test.tiny" and s.steps == 60 and s.sweep == {"lr": [0.1, 0.2]}
    assert [e.name for e in s.expectations] == ["sharpness_below_edge", "loss_falls", "monotone_after_event"]
    assert s.expectations[0].compare == "ratio" and s.expectations[0].kind == "le"
    assert len(s.sha256) == 64


# (edit applied to the valid text, the key path the message must name, a phrase it must hold)
BAD = [
    (lambda t: t.replace('[run]\nsteps = 60', '[run]\nsteps = 60\n[run'), "", "malformed TOML"),
    (lambda t: t.replace("steps = 60", "step = 60"), "run.step", "did you mean 'steps'"),
    (lambda t: t.replace("steps = 60", "steps = 0"), "run.steps", "> 0"),
    (lambda t: t.replace("steps = 60", 'steps = "60"'), "run.steps", "expected an integer"),
    (lambda t: t.replace("lr = [0.1, 0.2]", "lr = [0.1, -0.2]"), "optimizer.lr", "> 0"),
    (lambda t: t.replace("lr = [0.1, 0.2]", "lr = 0"), "optimizer.lr", "> 0"),
    (lambda t: t.replace("lr = [0.1, 0.2]", ""), "optimizer.lr", "missing"),
    (lambda t: t.replace('kind = "gd"', 'kind = "adam"'), "optimizer.kind", "unknown optimizer 'adam'"),
    (lambda t: t.replace('kind = "quadratic"', 'kind = "quadratc"'), "problem.kind", "did you mean 'quadratic'"),
    (lambda t: t.replace('predict = "gd_edge"', 'predict = "gd_egde"'), "expect[0].predict", "did you mean 'gd_edge'"),
    (lambda t: t.replace('predict = "gd_edge"', 'predict = "heavy_ball_edge"'), "expect[0].predict", "'momentum'"),
    (lambda t: t.replace('measure = "lambda_max"\npredict', 'measure = "lambda_min"\npredict'), "expect[0].measure", "lambda_min"),
    (lambda t: t.replace("[measures.lambda_max]", "[measures.sharpness]"), "measures.sharpness", "unknown measure 'sharpness'"),
    (lambda t: t.replace('statistic = "max"', 'statistic = "maximum"'), "expect[0].statistic", "unknown statistic"),
    (lambda t: t.replace('check = "le"\nbound = 0.9', 'check = "le"'), "expect[0].bound", "missing"),
    (lambda t: t.replace('check = "le"\nbound = 0.9', 'check = "aprox"\nrtol = 0.1'), "expect[0].check", "did you mean 'approx'"),
    (lambda t: t.replace('anchor = "low_loss"', 'anchor = "high_loss"'), "expect[2].window.anchor", "event"),
    (lambda t: t.replace("tol = 1e-8", "tol = -1e-8"), "measures.lambda_max.tol", "> 0"),
    (lambda t: t.replace("tol = 1e-8", "tolerance = 1e-8"), "measures.lambda_max.tolerance", "did you mean 'tol'"),
    (lambda t: t.replace('dtype = "float64"', 'dtype = "float16"'), "suite.dtype", "float32"),
    (lambda t: t.replace('devices = ["cpu", "cuda"]', 'devices = ["cpu", "tpu"]'), "suite.devices[1]", "'cuda'"),
    (lambda t: t.replace("schema = 1", "schema = 2"), "schema", "unsupported schema version"),
    (lambda t: t.replace("schema = 1", ""), "schema", "missing"),
    (lambda t: t.replace('claim = "GD', 'clam = "GD'), "suite.clam", "did you mean 'claim'"),
    (lambda t: t.replace("eigenvalues = [4.0, 1.0, 0.5]", 'eigenvalues = [4.0, "one"]'), "problem.eigenvalues[1]", "number"),
    (lambda t: t + '\n[extra]\nx = 1\n', "extra", "unknown key"),
    (lambda t: t.replace('name = "loss_falls"', 'name = "sharpness_below_edge"'), "expect", "distinct"),
    (lambda t: t.replace("bound = 0.9", "bound = 0.9\non = { tpu = { bound = 1.0 } }"), "expect[0].on.tpu", "devices"),
    (lambda t: t.replace("within = 60", "within = 60\nstatistic = \"max\""), "expect[1].statistic", "takes no statistic"),
    (lambda t: t + SWEEP.replace('across = "lr"', 'across = "rho"'), "sweep_expect[0].across", "sweep axis"),
    (lambda t: t + SWEEP.replace('aggregate = "spearman"\n', ''), "sweep_expect[0].aggregate", "missing"),
    (lambda t: t + SWEEP.replace('aggregate = "spearman"', 'aggregate = "kendall"'), "sweep_expect[0].aggregate", "spearman"),
    (lambda t: t.replace('bound = 0.9', 'bound = 0.9\nacross = "lr"'), "expect[0].across", "only a [[sweep_expect]]"),
    (lambda t: t.replace("every = 10\n", 'every = 10\nfrom_event = "lowloss"\n'), "measures.lambda_max.from_event", "event"),
    (lambda t: t.replace('anchor = "low_loss", offset = 0', 'until = "nope"'), "expect[2].window.until", "event"),
    (lambda t: t.replace("steps = 60", 'steps = 60\nstop = { event = "nope" }'), "run.stop.event", "event"),
    (lambda t: t.replace("steps = 60", 'steps = 60\nstop = { evnt = "low_loss" }'), "run.stop.evnt", "did you mean 'event'"),
    (lambda t: t.replace('statistic = "max"', 'statistic = { name = "spearman", with = "gradnorm" }'),
     "expect[0].statistic.with", "gradnorm"),
    (lambda t: t.replace('predict = "gd_edge"', 'predict = "gd_edge"\nargs = { lr = "loss_rate" }'),
     "expect[0].args.lr", "names a measure"),
    (lambda t: t.replace("bound = 0.9", 'bound = { predict = "gd_edge", arg = {} }'), "expect[0].bound.arg", "args"),
    (lambda t: t.replace("bound = 0.9", 'bound = { predict = "sam_edge" }'), "expect[0].bound.predict", "'rho'"),
    (lambda t: t + '\n[events.predicted]\npredict = "gd_edge"\nabove = 1.0\n', "events.predicted.above",
     "no threshold"),
    (lambda t: t + '\n[events.predicted]\npredict = "gd_edge"\nround = "up"\n', "events.predicted.round", "ceil"),
    (lambda t: t.replace("slow = false", "slow = false\nreport_only = true"), "suite.report_only", "asserts nothing"),
    (lambda t: t[: t.index("[[expect]]")], "expect", "report_only"),
    (lambda t: t + '\n[[overlay]]\nmeasure = "grad"\npredict = "gd_edge"\n', "overlay[0].measure", "lambda_max"),
    (lambda t: t + '\n[[overlay]]\nmeasure = "loss"\n', "overlay[0].predict", "missing"),
    (lambda t: t + '\n[[overlay]]\nmeasure = "loss"\npredict = "gd_edj"\n', "overlay[0].predict", "gd_edge"),
    (lambda t: t + '\n[[overlay]]\nmeasure = "loss"\npredict = "gd_edge"\ncolour = "red"\n', "overlay[0].colour",
     "unknown key"),
]

SWEEP = '''
[[sweep_expect]]
name = "faster_with_larger_lr"
measure = "loss"
statistic = "last"
across = "lr"
aggregate = "spearman"
check = "le"
bound = -0.99
'''


@pytest.mark.parametrize("edit,key,phrase", BAD, ids=[b[1] or "toml" for b in BAD])
def test_a_malformed_suite_is_refused_naming_the_key_path(tmp_path, edit, key, phrase):
    path = write(tmp_path, edit(VALID))
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert err.value.file == str(path)
    assert err.value.key == key, str(err.value)
    assert phrase in err.value.message, str(err.value)
    assert str(err.value).startswith(f"{path}: ")


def test_missing_file():
    with pytest.raises(SuiteError, match="cannot read"):
        load_suite("no/such/suite.toml")


def test_device_override_applies_only_on_its_device(tmp_path):
    text = VALID.replace("bound = 0.9", "bound = 0.9\non = { cuda = { bound = 0.95 } }")
    e = load_suite(write(tmp_path, text)).expectations[0]
    assert e.for_device("cpu").check.bound.value == 0.9 and e.for_device("cuda").check.bound.value == 0.95


def test_shipped_suites_all_load():
    from pathlib import Path
    files = sorted(Path(__file__).parents[2].joinpath("suites").glob("*.toml"))
    assert files
    for f in files:
        load_suite(f)


def _suite_with_a_sweep_expectation_stopping_on_an_event(tmp_path):
    text = VALID.replace("steps = 60", 'steps = 60\nstop = { event = "low_loss", after = 3 }') + SWEEP
    return load_suite(write(tmp_path, text))


def test_a_sweep_expectation_loads(tmp_path):
    s = _suite_with_a_sweep_expectation_stopping_on_an_event(tmp_path)
    (e,) = s.sweep_expectations
    assert e.over_sweep and e.across == "lr" and e.aggregate == "spearman"


def test_a_stop_on_an_event_loads(tmp_path):
    s = _suite_with_a_sweep_expectation_stopping_on_an_event(tmp_path)
    assert s.stop_event == "low_loss" and s.stop_after == 3


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """A suite with a predicted event (floor(2 / 0.2) = 10) anchoring a window, and a bound
    predicted with its own args (2 / 0.25): the suite, and the verdicts of its first CPU case."""
    from harness import expand, run_case
    text = VALID.replace("bound = 0.9", 'bound = { predict = "gd_edge", args = { lr = 0.25 } }') + """
[events.ten_steps]
predict = "gd_edge"
args = { lr = 0.2 }
round = "floor"

[[expect]]
name = "loss_after_predicted_step"
measure = "loss"
statistic = "first"
window = { anchor = "ten_steps" }
check = "lt"
bound = 1.0
"""
    s = load_suite(write(tmp_path_factory.mktemp("predicted"), text))
    r = run_case(expand(s, ["cpu"])[0])
    return s, {x.name: x for x in r.verdicts}


def test_a_predicted_event_is_read_as_predicted(predicted):
    s, _ = predicted
    assert s.events["ten_steps"].predicted


def test_a_window_anchored_on_a_predicted_event_starts_at_the_predicted_step(predicted):
    _, v = predicted
    assert v["loss_after_predicted_step"].window[0] == 10  # floor(2 / 0.2)


def test_a_predicted_bound_with_its_own_args_is_the_reported_prediction(predicted):
    _, v = predicted
    assert v["sharpness_below_edge"].predicted == 8.0  # the bound 2 / 0.25 is the reported prediction


@pytest.fixture(scope="module")
def zipped(tmp_path_factory):
    """A zip sweep over lr 0.1 and 1000, the expectations kept to lr 0.1 by where, and one at lr
    1000 that allows divergence: the suite, and its seed-0 CPU results by lr."""
    from harness import expand, run_case
    text = VALID.replace("lr = [0.1, 0.2]", 'sweep = "zip"\nlr = [0.1, 1000.0]').replace(
        'name = "sharpness_below_edge"', 'name = "sharpness_below_edge"\nwhere = { lr = 0.1 }') + """
[[expect]]
name = "blows_up"
where = { lr = 1000.0 }
measure = "loss"
check = "reaches"
direction = "above"
threshold = 1e10
within = 20
allow_divergence = true
"""
    text = text.replace('name = "loss_falls"', 'name = "loss_falls"\nwhere = { lr = 0.1 }').replace(
        'name = "monotone_after_event"', 'name = "monotone_after_event"\nwhere = { lr = 0.1 }')
    s = load_suite(write(tmp_path_factory.mktemp("zipped"), text))
    results = {dict(c.point)["lr"]: run_case(c) for c in expand(s, ["cpu"]) if c.seed == 0}
    return s, results


def test_a_zip_sweep_pairs_its_axes_point_by_point(zipped):
    s, _ = zipped
    assert s.sweep_points() == [{"lr": 0.1}, {"lr": 1000.0}]


def test_where_keeps_expectations_to_their_points(zipped):
    _, results = zipped
    assert [v.name for v in results[0.1].verdicts] == ["sharpness_below_edge", "loss_falls", "monotone_after_event"]


def test_an_expectation_allowing_divergence_judges_a_diverged_run(zipped):
    _, results = zipped
    big = results[1000.0]
    assert big.diverged_at is not None and [v.name for v in big.verdicts] == ["blows_up"] and big.passed


def test_where_refuses_a_value_not_on_its_axis(tmp_path):
    bad = VALID.replace('name = "loss_falls"', 'name = "loss_falls"\nwhere = { lr = 0.3 }')
    with pytest.raises(SuiteError, match="not among the axis"):
        load_suite(write(tmp_path, bad, "bad.toml"))


def test_a_zip_sweep_refuses_axes_of_different_lengths(tmp_path):
    with pytest.raises(SuiteError, match="same length"):
        load_suite(write(tmp_path, VALID.replace("lr = [0.1, 0.2]", 'sweep = "zip"\nlr = [0.1, 0.2]\nmomentum = [0.5]').replace('kind = "gd"', 'kind = "heavy_ball"'), "z.toml"))


@pytest.fixture(scope="module")
def overlaid(tmp_path_factory):
    """VALID with an overlay of gd_edge on the loss: the suite, and its first CPU case's result."""
    from harness import expand, run_case

    suite = load_suite(write(tmp_path_factory.mktemp("overlay"),
                             VALID + '\n[[overlay]]\nmeasure = "loss"\npredict = "gd_edge"\n'))
    return suite, run_case(expand(suite, ["cpu"])[0])


def test_an_overlay_is_read(overlaid):
    suite, _ = overlaid
    assert [(o.measure, o.predict) for o in suite.overlays] == [("loss", "gd_edge")]


def test_an_overlay_prediction_is_recorded_at_its_measures_steps(overlaid):
    _, result = overlaid
    assert set(result.predictions) == {"gd_edge on lambda_max", "gd_edge on loss"}
    assert result.predictions["gd_edge on loss"]["steps"] == result.trajectories["loss"]["steps"]


def test_an_overlay_adds_no_verdict(overlaid):
    _, result = overlaid
    assert len(result.verdicts) == 3  # the overlay adds no verdict
