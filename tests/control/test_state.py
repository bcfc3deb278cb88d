"""The resume state's schema: every rule, hostile states, and the binding to its controller."""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.controller import LRController, load_controller_file
from lr_gym.control.state import (
    FIX,
    STATE_KEYS,
    TRACKER_CONSTANTS,
    TRACKER_STATS,
    ControllerStateError,
    check_scheduler_state,
    check_state,
)
from lr_gym.features import STEP_FEATURES

T, K = 40, 5
SOURCE = "the test's state"


@pytest.fixture(scope="module")
def policy():
    return load_controller_file("lr_gym/task-base")


def _controller(policy, lr=0.1, groups=1, **kw):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p in params])
    return LRController(opt, policy, total_steps=T, steps_per_action=K, guard=False, **kw)


def _drive(ctl, steps, seed=0):
    rng = np.random.default_rng(seed)
    if not ctl._started:
        ctl.observe(val_loss=1.2, val_metric=0.1)
    for _ in range(steps):
        ctl.step(float(rng.uniform(0.2, 1.0)), grad_norm=float(rng.uniform(0.5, 2.0)))
        if ctl.eval_due:
            v = float(rng.uniform(0.2, 1.0))
            ctl.observe(val_loss=v, val_metric=1 - v, update_ratio=1e-3)


@pytest.fixture(scope="module")
def saved(policy):
    """``(state, spec)`` of a controller 12 steps in (mid-interval), through JSON."""
    ctl = _controller(policy)
    _drive(ctl, 12)
    return json.loads(json.dumps(ctl.state_dict())), ctl.state_spec()


@pytest.fixture
def state(saved):
    return copy.deepcopy(saved[0])


@pytest.fixture
def spec(saved):
    return saved[1]


def _refused(state, spec, message):
    with pytest.raises(ControllerStateError) as err:
        check_state(state, spec, SOURCE)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{SOURCE}: ")
    assert re.search(message, text), text
    return text


def test_a_saved_state_passes_as_it_is(state, spec, policy):
    clean = check_state(state, spec, SOURCE)
    assert clean == state  # nothing is dropped or changed
    assert list(clean) == list(STATE_KEYS)
    assert set(clean["tracker"]) == set(TRACKER_CONSTANTS + TRACKER_STATS)
    fresh = _controller(policy).state_dict()  # before the first decision
    assert check_state(fresh, spec, SOURCE) == fresh
    assert set(fresh["tracker"]) == set(TRACKER_CONSTANTS)


# What issue 36 found: each was taken as it was.
@pytest.mark.parametrize(("edit", "message"), [
    ({"lr0": math.nan}, r"lr0 is nan in the state but 0\.1 in this controller; build the "
                        r"optimizer with the lr"),
    ({"group_lr0": [math.nan]}, r"group_lr0 is \[nan\] in the state but \[0\.1\]"),
    ({"scale": math.nan}, r"scale must be > 0 and <= 1, finite, got nan"),
    ({"lr_max": 1e9, "multiplier": 1e9}, r"lr_max must be > 0\.001 and <= 10, finite, got "
                                         r"1000000000\.0"),
    ({"t": -5}, r"t must be >= 0, got -5"),
    ({"tracker": {"update": 1}}, r"tracker lacks \['lr0', 'short_halflife'"),
    ({"step": 1}, r"the state has unknown key\(s\) \['step'\]"),
    ({"losses": [0.5] * 10_000_000}, r"losses has 10,000,000 items; it must have 0 to 10;"),
])
def test_the_hostile_states_of_issue_36_are_refused(state, spec, edit, message):
    state.update(edit)
    text = _refused(state, spec, message)
    assert len(text) < 600  # a huge value is never quoted whole


@pytest.mark.parametrize("value", [None, [], "state", 3])
def test_a_state_that_is_no_dict_is_refused(spec, value):
    _refused(value, spec, rf"the state must be a dict, got {type(value).__name__}")


def test_a_missing_key_names_it(state, spec):
    del state["controller_sha256"], state["t"]
    _refused(state, spec, r"the state lacks \['controller_sha256', 't'\] \(a state of another "
                          r"lr_gym version, or cut short\); " + re.escape(FIX))


def test_a_state_of_another_controller_is_refused_naming_both(state):
    from prodigyopt import Prodigy

    opt = Prodigy([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    other = LRController(opt, "lr_gym/default", total_steps=T, steps_per_action=K,
                         guard=False)
    before = other.state_dict()
    with pytest.raises(ControllerStateError, match=(
            r"^LRController\.load_state_dict\(state\): the state was saved by controller "
            r"'lr_gym/task-base' \(content [0-9a-f]{12}\) but this is 'lr_gym/default' "
            r"\(content [0-9a-f]{12}\); resume with the controller file that saved it, or "
            r"start 'lr_gym/default' afresh without this state\.$")):
        other.load_state_dict(state)
    assert other.state_dict() == before


def test_states_bind_to_the_controller_content_budget_and_lrs(state, spec, policy):
    default = load_controller_file("lr_gym/default")
    bad = copy.deepcopy(state)
    bad["controller_sha256"] = default.content_sha256
    bad["controller"] = "lr_gym/default"
    _refused(bad, spec, r"the state was saved by controller 'lr_gym/default' \(content "
                        rf"{default.content_sha256[:12]}\) but this is 'lr_gym/task-base' "
                        rf"\(content {policy.content_sha256[:12]}\); resume with the "
                        r"controller file that saved it")
    for key, value in (("total_steps", T + 1), ("steps_per_action", K - 1)):
        bad = copy.deepcopy(state)
        bad[key] = value
        _refused(bad, spec, rf"{key} is {value} in the state but \d+ in this controller; "
                            "resume with the total_steps and steps_per_action")
    bad = copy.deepcopy(state)
    bad["group_lr0"] = [0.1, 0.1]
    _refused(bad, spec, r"group_lr0 has 2 items; it must have 1;")
    bad["controller"] = 7
    _refused(bad, spec, r"controller must be a name, got 7")


def _set(path, value):
    def edit(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


@pytest.mark.parametrize(("path", "value", "message"), [
    (("t",), T + 1, rf"t must be <= {T}, got {T + 1}"),
    (("t",), 12.0, r"t must be an integer, got 12\.0"),
    (("started",), 1, r"started must be true or false, got 1"),
    (("interval_start",), 6, r"interval_start must be >= 7, got 6"),
    (("interval_start",), 13, r"interval_start must be <= 12, got 13"),
    (("losses",), "0.5", r"losses must be a list, got str"),
    (("losses",), [0.5] * (2 * K + 1), r"losses has 11 items; it must have 0 to 10"),
    (("losses", 0), "nan", r"losses\[0\] must be a number, got 'nan'"),
    (("losses", 0), True, r"losses\[0\] must be a number, got True"),
    (("skipped_losses",), 25, r"skipped_losses must be <= 24, got 25"),
    (("skipped_losses",), -1, r"skipped_losses must be >= 0, got -1"),
    (("grad_norm",), -1.0, r"grad_norm must be >= 0 or NaN, got -1\.0"),
    (("grad_norm",), None, r"grad_norm must be a number, got None"),
    (("multiplier",), 0.0, r"multiplier must be > 0, finite, got 0\.0"),
    (("multiplier",), math.inf, r"multiplier must be > 0, finite, got inf"),
    (("action",), 1.0001, r"action must be >= -1 and <= 1, finite, got 1\.0001"),
    (("action",), -1.0001, r"action must be >= -1 and <= 1, finite, got -1\.0001"),
    (("scale",), 0.0, r"scale must be > 0 and <= 1, finite, got 0\.0"),
    (("scale",), 1.0001, r"scale must be > 0 and <= 1, finite, got 1\.0001"),
    (("blocked",), 3, r"blocked must be <= 2, got 3"),
    (("blocked",), -1, r"blocked must be >= 0, got -1"),
    (("raised",), "no", r"raised must be true or false, got 'no'"),
    (("lr_min",), 0.0009, r"lr_min must be >= 0\.001 and < 10, finite, got 0\.0009"),
    (("lr_min",), 10.0, r"lr_min must be >= 0\.001 and < 10, finite, got 10\.0"),
    (("lr_max",), 10.01, r"lr_max must be > 0\.001 and <= 10, finite, got 10\.01"),
    (("lr_max",), 0.001, r"lr_max must be > 0\.001 and <= 10, finite, got 0\.001"),
    (("lr_max",), math.inf, r"lr_max must be > 0\.001 and <= 10, finite, got inf"),
    (("last_obs",), [0.0] * 13, r"last_obs has 13 items; it must have 14;"),
    (("last_obs", 3), 10.01, r"last_obs\[3\] must be >= -10 and <= 10, finite, got 10\.01"),
    (("last_obs", 3), -10.01, r"last_obs\[3\] must be >= -10 and <= 10, finite, got -10\.01"),
    (("last_val",), None, r"last_val must be a list, got NoneType"),
    (("last_val",), [0.5], r"last_val has 1 items; it must have 2;"),
    (("last_val", 0), math.nan, r"last_val\[0\] must be finite, got nan"),
    (("last_val", 1), math.inf, r"last_val\[1\] must be finite, got inf"),
    (("history",), [[0, 0.0, 0.1]] * 14, r"history has 14 items; it must have 0 to 13"),
    (("history", 0), [0, 0.0], r"history\[0\] has 2 items; it must have 3;"),
    (("history", 1, 0), 13, r"history\[1\]\[0\] must be <= 12, got 13"),
    (("history", 1, 0), -1, r"history\[1\]\[0\] must be >= 0, got -1"),
    (("history", 1, 1), 1.5, r"history\[1\]\[1\] must be >= -1 and <= 1, finite, got 1\.5"),
    (("history", 1, 1), -1.5, r"history\[1\]\[1\] must be >= -1 and <= 1, finite, got -1\.5"),
    (("history", 1, 2), -0.1, r"history\[1\]\[2\] must be >= 0, finite, got -0\.1"),
    (("history", 1, 2), math.nan, r"history\[1\]\[2\] must be >= 0, finite, got nan"),
    (("guard_restores",), 4, r"guard_restores must be <= 3, got 4"),
    (("guard_restores",), -1, r"guard_restores must be >= 0, got -1"),
    (("tracker",), [], r"tracker must be a dict, got list"),
    (("tracker", "lr0"), 0.2, r"tracker\.lr0 is 0\.2 in the state but 0\.1 in this controller"),
    (("tracker", "short_halflife"), 5.0, r"tracker\.short_halflife is 5\.0 in the state but "
                                         r"10\.0"),
    (("tracker", "long_halflife"), 5.0, r"tracker\.long_halflife is 5\.0 in the state"),
    (("tracker", "features"), ["progress"], r"tracker\.features is \['progress'\] in the state"),
    (("tracker", "_a_short"), 0.5, r"tracker\._a_short is 0\.5 in the state"),
    (("tracker", "_a_long"), 0.5, r"tracker\._a_long is 0\.5 in the state"),
    (("tracker", "initial_loss"), 0.0, r"tracker\.initial_loss must be > 0, finite, got 0\.0"),
    (("tracker", "_short"), math.nan, r"tracker\._short must be finite, got nan"),
    (("tracker", "_long"), math.inf, r"tracker\._long must be finite, got inf"),
    (("tracker", "_prev_val"), math.nan, r"tracker\._prev_val must be finite, got nan"),
    (("tracker", "_best_val"), "0.5", r"tracker\._best_val must be a number, got '0\.5'"),
    (("tracker", "_grad0"), 0.0, r"tracker\._grad0 must be > 0, finite, got 0\.0"),
    (("tracker", "_prev_grad"), -1.0, r"tracker\._prev_grad must be > 0, finite, got -1\.0"),
    (("tracker", "_prev_mean_loss"), math.nan, r"tracker\._prev_mean_loss must be finite"),
    (("tracker", "_prev_gap"), math.nan, r"tracker\._prev_gap must be finite, got nan"),
    (("tracker", "_d_first"), 0.0, r"tracker\._d_first must be > 0, finite, got 0\.0"),
    (("tracker", "_d_prev"), math.inf, r"tracker\._d_prev must be > 0, finite, got inf"),
    (("tracker", "_vs_chance"), math.nan, r"tracker\._vs_chance must be finite, got nan"),
    (("tracker", "chance_loss"), 0.7, r"tracker\.chance_loss is 0\.7 in the state but None"),
    (("tracker", "_step_emas"), {}, r"tracker\._step_emas lacks \["),
    (("tracker", "_step_emas", STEP_FEATURES[0]), math.inf,
     rf"tracker\._step_emas\.{STEP_FEATURES[0]} must be finite, got inf"),
    (("tracker", "_step_emas", "update"), 1.0, r"tracker\._step_emas has unknown key\(s\)"),
    (("tracker", "update"), 1, r"tracker has unknown key\(s\) \['update'\]"),
])
def test_each_field_is_checked_and_named(state, spec, path, value, message):
    assert len(state["history"]) == 3 and state["t"] == 12  # the bounds above assume these
    _set(path, value)(state)
    _refused(state, spec, message)


@pytest.mark.parametrize(("path", "value"), [
    (("t",), T), (("interval_start",), 7), (("losses",), [math.nan, math.inf, 1] * 3 + [0.5]),
    (("skipped_losses",), 24), (("grad_norm",), math.nan), (("grad_norm",), math.inf),
    (("grad_norm",), 0.0), (("action",), -1.0), (("action",), 1.0), (("scale",), 1.0),
    (("blocked",), 2), (("blocked",), 0), (("lr_min",), 0.001), (("lr_max",), 10.0),
    (("last_obs", 0), 10.0), (("last_obs", 0), -10.0), (("history",), []),
    (("history", 0, 2), 0.0), (("guard_restores",), 3), (("tracker", "_grad0"), None),
    (("tracker", "_prev_grad"), None), (("tracker", "_prev_mean_loss"), None),
    (("tracker", "_prev_gap"), -0.5), (("tracker", "_prev_gap"), None),
    (("tracker", "_d_first"), 1e-6), (("tracker", "_d_prev"), None),
    (("tracker", "_vs_chance"), -2.0),
    (("tracker", "_short"), -3.0), (("tracker", "_step_emas", STEP_FEATURES[0]), None),
    (("tracker", "features"), tuple(load_controller_file("lr_gym/task-base")
                                    .env_config.features)),
])
def test_the_ranges_ends_are_accepted(state, spec, path, value):
    if path == ("history",):
        state["guard_restores"] = 0
    if path == ("t",):  # the last step: its interval began at most K steps before
        state["interval_start"] = T - K
    _set(path, value)(state)
    clean = check_state(state, spec, SOURCE)
    target = clean
    for key in path[:-1]:
        target = target[key]
    got = target[path[-1]]
    assert got == value or (isinstance(value, float) and math.isnan(value)
                            and math.isnan(got)) or list(got) == list(value)


def test_a_state_before_the_first_decision_has_decided_nothing(policy, spec):
    fresh = _controller(policy).state_dict()
    for key, value in (("t", 1), ("last_obs", [0.0] * 14), ("last_val", [1.0, 0.0])):
        bad = copy.deepcopy(fresh)
        bad[key] = value
        _refused(bad, spec, rf"{key} (must be <= 0, got 1|is .* in the state but None)")
    bad = copy.deepcopy(fresh)
    bad["tracker"]["initial_loss"] = 1.0  # statistics only the first decision makes
    _refused(bad, spec, r"tracker has unknown key\(s\) \['initial_loss'\]")


def test_the_clean_state_is_plain_python_and_takes_this_controllers_constants(state, spec):
    state["t"] = np.int64(12)  # e.g. a state someone built with numpy
    state["multiplier"] = np.float32(1.5)
    clean = check_state(state, spec, SOURCE)
    assert type(clean["t"]) is int and clean["t"] == 12
    assert type(clean["multiplier"]) is float and clean["multiplier"] == 1.5
    assert clean["tracker"]["features"] == list(spec.features)  # ...and lists, no tuples


def test_an_infinite_lr_max_is_accepted_only_from_a_controller_without_cap(policy):
    ctl = _controller(policy, lr_max=math.inf)
    _drive(ctl, 6)
    state = json.loads(json.dumps(ctl.state_dict()))
    assert math.isinf(check_state(state, ctl.state_spec(), SOURCE)["lr_max"])
    capped = _controller(policy)
    _refused(state, capped.state_spec(), r"lr_max must be > 0\.001 and <= 10, finite, got inf")


def test_the_scheduler_fields_take_this_schedulers_keys_and_types_only():
    own = {"base_lrs": [0.1], "last_epoch": 3, "_step_count": 4, "_is_initial": False,
           "_last_lr": [0.1], "name": "x"}
    good = {**own, "controller": {"t": 0}}
    assert check_scheduler_state(good, own, SOURCE) == good
    for edit, message in (
        ({"step": 1}, r"the state_dict has unknown key\(s\) \['step'\]"),
        ({"last_epoch": -2}, r"last_epoch must be >= -1, got -2"),
        ({"last_epoch": 10_000_001}, r"last_epoch must be <= 10,000,000"),
        ({"last_epoch": True}, r"last_epoch must be an integer"),
        ({"_is_initial": 0}, r"_is_initial must be true or false, got 0"),
        ({"base_lrs": [0.1, 0.2]}, r"base_lrs has 2 items; it must have 1;"),
        ({"_last_lr": [math.nan]}, r"_last_lr\[0\] must be finite, got nan"),
        ({"name": "y"}, r"name is 'y' in the state but 'x' in this controller"),
    ):
        with pytest.raises(ControllerStateError, match=message):
            check_scheduler_state({**good, **edit}, own, SOURCE)
    missing = dict(good)
    del missing["controller"]
    with pytest.raises(ControllerStateError, match=r"lacks \['controller'\]"):
        check_scheduler_state(missing, own, SOURCE)
    assert check_scheduler_state({**good, "last_epoch": -1}, own, SOURCE)["last_epoch"] == -1


# ------------------------------------------------------------------ property-based
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=12)


def _paths(value, prefix=()):
    """Every key path inside a state."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _replace(state, path, value):
    if not path:
        return value
    out = copy.deepcopy(state)
    _set(path, value)(out)
    return out


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_hostile_value_anywhere_is_refused_in_one_line_or_restores_a_sane_run(
        data, saved, policy):
    state, spec = saved
    paths = list(_paths(state))
    path = data.draw(st.sampled_from(paths), label="path")
    hostile = _replace(state, path, data.draw(_JSON, label="value"))
    ctl = _controller(policy)
    _drive(ctl, 3)  # something to lose if a refusal changed anything
    before = json.dumps(ctl.state_dict())
    try:
        ctl.load_state_dict(hostile, source=SOURCE)
    except ControllerStateError as err:
        text = str(err)
        assert text.startswith(f"{SOURCE}: ") and "\n" not in text and len(text) < 700
        assert json.dumps(ctl.state_dict()) == before  # a refusal changes nothing
        return
    # Accepted: whatever it held, the run goes on inside the controller's bounds.
    for _ in range(6):
        lr = ctl.get_last_lr()[0]
        assert math.isfinite(lr) and ctl._bounds[0] <= lr <= ctl._bounds[1]
        _drive(ctl, 1, seed=1)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.sampled_from([*STATE_KEYS, "step", "update", "__class__"]), _JSON,
                       max_size=len(STATE_KEYS) + 2))
def test_any_made_up_state_is_refused_in_one_line(saved, made_up):
    _, spec = saved
    with pytest.raises(ControllerStateError) as err:
        check_state(made_up, spec, SOURCE)
    assert "\n" not in str(err.value) and len(str(err.value)) < 700


def test_refusals_are_whole_sentences_with_their_fix(state, spec):
    bad = copy.deepcopy(state)
    bad["t"] = -5
    assert _refused(bad, spec, "") == f"{SOURCE}: t must be >= 0, got -5; {FIX}."
    bad = copy.deepcopy(state)
    bad["scale"] = 2.0
    assert _refused(bad, spec, "") == (f"{SOURCE}: scale must be > 0 and <= 1, finite, got "
                                       f"2.0; {FIX}.")
    bad = copy.deepcopy(state)
    bad["group_lr0"] = [0.2]
    assert _refused(bad, spec, "") == (
        f"{SOURCE}: group_lr0 is [0.2] in the state but [0.1] in this controller; build the "
        "optimizer with the lr (and param groups) it was saved with, or pass the same lr0=.")


def test_a_long_detail_is_cut_to_one_short_line():
    from lr_gym.control.state import _MESSAGE_CHARS, _clip

    exact = "x" * _MESSAGE_CHARS
    assert _clip(exact) == exact
    assert _clip(exact + "y") == exact + "..."
    assert _clip("a\nb \t c") == "a b c"


def test_the_tracker_constants_are_this_controllers(spec):
    import dataclasses

    from lr_gym.features import FeatureTracker

    short = dataclasses.replace(spec, features=("progress", "val_metric"), short_halflife=3.0)
    constants = short.tracker_constants()
    assert constants["features"] == ("progress", "val_metric")
    tracker = FeatureTracker(0.1, 3.0, spec.long_halflife, ("progress", "val_metric"))
    tracker.reset(5.0, 0.5)  # the rates do not depend on the run
    assert constants["_a_short"] == tracker.state_dict()["_a_short"]
    assert set(constants) == {*TRACKER_CONSTANTS, "_a_short", "_a_long"}


def test_a_state_binds_the_chance_loss_it_was_saved_with(policy):
    ctl = _controller(policy, chance_loss=math.log(2))
    _drive(ctl, 7)
    state = json.loads(json.dumps(ctl.state_dict()))
    resumed = _controller(policy, chance_loss=math.log(2))
    resumed.load_state_dict(state)
    assert json.dumps(resumed.state_dict(), sort_keys=True) == json.dumps(state, sort_keys=True)
    other = _controller(policy, chance_loss=math.log(10))
    with pytest.raises(ControllerStateError, match=r"tracker\.chance_loss is 0\.69\d* in the "
                       r"state but 2\.30\d* in this controller"):
        other.load_state_dict(state)
