from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import lr_gym  # registers the env ids
from agents.baselines import BASELINES, ProdigyBaseline, make_baseline
from agents.baselines.base import ScheduleBaseline
from agents.baselines.open_loop import CONTROLS
from agents.evaluation.rollout import run_episode
from agents.evaluation.tuning import (
    DEFAULT_SPACE,
    TUNING_SEED,
    TuningResult,
    quasi_random_exponents,
    trial_exponents,
    trial_lrs,
    tune_controller,
    tune_lr,
)
from lr_gym.registration import get_task
from lr_gym.tasks.base import Task
from lr_gym.tasks.grids.embedded import make_task

ENV = "lr_gym/Digits-MLP-v1"
# A 30-step budget keeps each episode well under a second; it is part of the cache key too.
FAST = {"total_steps": 30, "steps_per_action": 15}


class StaticWithLR(ScheduleBaseline):
    """Constant schedule from a given lr0 (what a baseline's ``with_lr`` builds)."""

    def __init__(self, lr: float) -> None:
        super().__init__("constant", name="static")
        self.lr = lr

    def wrap_task(self, task: Task) -> Task:
        return dataclasses.replace(task, lr=self.lr)


class CountingMake:
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def __call__(self, lr: float) -> StaticWithLR:
        self.lrs.append(lr)
        return StaticWithLR(lr)


def test_quasi_random_sequence_deterministic_and_covering():
    u = quasi_random_exponents(7)
    np.testing.assert_allclose(u, [0.0, -0.5, 0.5, -0.75, 0.25, -0.25, 0.75])
    np.testing.assert_array_equal(u, quasi_random_exponents(7))
    # prefixes are sub-budgets
    np.testing.assert_array_equal(quasi_random_exponents(5), u[:5])
    # 2**m - 1 points are the regular grid of spacing 2 / 2**m inside [-1, 1]
    for m in (3, 6):
        pts = np.sort(quasi_random_exponents(2**m - 1))
        np.testing.assert_allclose(pts, -1 + 2 * np.arange(1, 2**m) / 2**m)
    big = quasi_random_exponents(1000)
    assert big.min() >= -1 and big.max() <= 1
    assert np.max(np.diff(np.sort(np.r_[-1, big, 1]))) < 0.01
    with pytest.raises(ValueError, match=">= 1 trial"):
        quasi_random_exponents(0)


def test_trial_lrs_scale_base_lr():
    lrs = trial_lrs(0.05, 3)
    np.testing.assert_allclose(lrs, [0.05, 0.05 / 10**0.5, 0.05 * 10**0.5])
    with pytest.raises(ValueError, match="base_lr"):
        trial_lrs(0.0, 3)


def test_trials_map_linearly_onto_the_space_first_at_its_centre():
    # u = 0, -0.5, 0.5, -0.75, 0.25 on [-1, 1] -> lo + (u + 1) / 2 * (hi - lo).
    np.testing.assert_allclose(trial_exponents(5, (0.0, 1.0)), [0.5, 0.25, 0.75, 0.125, 0.625])
    np.testing.assert_allclose(trial_exponents(3, (-2.0, 2.0)), [0.0, -1.0, 1.0])
    np.testing.assert_allclose(trial_lrs(2.0, 2, (-2.0, 0.0)), [2.0 / 10, 2.0 / 10**1.5])
    np.testing.assert_array_equal(trial_exponents(7), quasi_random_exponents(7))
    for bad in [(1.0, 1.0), (1.0, -1.0), (0.0, math.inf)]:
        with pytest.raises(ValueError, match="lo < hi"):
            trial_exponents(3, bad)


SGD_TASK, ADAM_TASK = get_task("Digits-MLP"), make_task("digits-mlp", optimizer="adam")


@pytest.mark.parametrize("name", [n for n in BASELINES if n not in CONTROLS])
@pytest.mark.parametrize("task", [SGD_TASK, ADAM_TASK], ids=["sgd", "adam"])
def test_each_baselines_trials_lie_in_its_space_first_at_the_centre(name, task):
    c = make_baseline(name)
    base, (lo, hi) = c.default_lr(task), c.search_space(task)
    assert math.isfinite(base) and base > 0 and lo < hi
    lrs = trial_lrs(base, 16, (lo, hi))
    exps = np.log10(np.array(lrs) / base)
    assert np.all(exps >= lo - 1e-12) and np.all(exps <= hi + 1e-12)
    assert exps[0] == pytest.approx((lo + hi) / 2)


def test_tuning_picks_best_validation_trial_and_caches(tmp_path):
    cache = tmp_path / "tuning.json"
    make = CountingMake()
    res = tune_lr(ENV, make, name="static", budget=3, env_kwargs=FAST, cache=cache)
    assert isinstance(res, TuningResult)
    assert res.base_lr == pytest.approx(0.05) and res.seed == TUNING_SEED
    assert res.space == DEFAULT_SPACE == (-2.0, 2.0)
    assert make.lrs == pytest.approx(trial_lrs(0.05, 3, DEFAULT_SPACE))

    # Running the trials ourselves gives the same validation metrics and winner.
    finals = [
        run_episode(ENV, StaticWithLR(lr), TUNING_SEED, env_kwargs=FAST).final_val_metric
        for lr in trial_lrs(0.05, 3, DEFAULT_SPACE)
    ]
    assert len(set(finals)) == 3  # the lrs matter, so picking the best is a real choice
    assert [t.final_val_metric for t in res.trials] == pytest.approx(finals)
    assert res.best == int(np.argmax(finals))
    assert res.best_lr == pytest.approx(trial_lrs(0.05, 3, DEFAULT_SPACE)[res.best])

    # Cache hit: identical result, no controller built, so no episode run.
    again = CountingMake()
    assert tune_lr(ENV, again, name="static", budget=3, env_kwargs=FAST, cache=cache) == res
    assert again.lrs == []
    # A different key (budget) misses the cache; the old entry stays.
    tune_lr(ENV, again, name="static", budget=1, env_kwargs=FAST, cache=cache)
    assert len(again.lrs) == 1
    assert len(json.loads(cache.read_text())["entries"]) == 2


def test_cache_key_includes_the_space(tmp_path):
    cache = tmp_path / "tuning.json"
    one = tune_lr(ENV, StaticWithLR, name="static", budget=2, env_kwargs=FAST, cache=cache,
                  space=(-1.0, 1.0))
    make = CountingMake()
    other = tune_lr(ENV, make, name="static", budget=2, env_kwargs=FAST, cache=cache,
                    space=(0.0, 1.0))
    assert make.lrs == pytest.approx(trial_lrs(0.05, 2, (0.0, 1.0)))  # a miss: trials ran
    assert other.space == (0.0, 1.0) and one.space == (-1.0, 1.0)
    entries = json.loads(cache.read_text())["entries"]
    assert sorted(json.loads(k)["space"] for k in entries) == [[-1.0, 1.0], [0.0, 1.0]]
    again = CountingMake()  # each space hits its own entry, round-tripped exactly
    assert tune_lr(ENV, again, name="static", budget=2, env_kwargs=FAST, cache=cache,
                   space=(0.0, 1.0)) == other
    assert again.lrs == []


class FakeController(StaticWithLR):
    """A tunable controller with its own default LR and space, recording its trials."""

    tunable = True

    def __init__(self, lr: float | None = None, log: list[float] | None = None) -> None:
        super().__init__(lr if lr is not None else 0.0)
        self.lr, self.log = lr, log if log is not None else []

    def default_lr(self, task: Task) -> float:
        return 4 * task.lr

    def search_space(self, task: Task) -> tuple[float, float]:
        return (-1.0, 0.0)

    def with_lr(self, lr: float) -> FakeController:
        self.log.append(lr)
        return FakeController(lr, self.log)


def test_tune_controller_uses_its_default_lr_and_space():
    c = FakeController()
    res = tune_controller(ENV, c, budget=3, env_kwargs=FAST)
    assert res.base_lr == pytest.approx(0.2) and res.space == (-1.0, 0.0)
    assert res.baseline == "static" and res.seed == TUNING_SEED
    assert c.log == pytest.approx(trial_lrs(0.2, 3, (-1.0, 0.0)))  # 0.2 x 10^-0.5 first
    assert res.best_lr == pytest.approx(c.log[res.best])
    with pytest.raises(TypeError, match="not tunable"):
        tune_controller(ENV, make_baseline("replay", targets=[0.1]), budget=1)
    with pytest.raises(ValueError, match="single-task"):
        tune_controller(lr_gym.TRAIN_MIX_ID, FakeController(), budget=1)


def test_tune_controller_tunes_prodigy_over_d_coef():
    # Prodigy's tuned value is d_coef around 1.0, whatever the task's lr0 (0.05 here).
    res = tune_controller(ENV, ProdigyBaseline(), budget=2, env_kwargs=FAST)
    assert res.base_lr == 1.0 and res.space == (-1.0, 1.0)
    assert [t.lr for t in res.trials] == pytest.approx([1.0, 10**-0.5])
    assert all(math.isfinite(t.score) for t in res.trials)
    tuned = ProdigyBaseline().with_lr(res.best_lr).wrap_task(SGD_TASK)
    assert tuned.lr == 1.0 and tuned.optimizer_kwargs["d_coef"] == res.best_lr


def test_tuning_never_uses_test_data():
    with_test = tune_lr(ENV, StaticWithLR, name="static", budget=2, env_kwargs=FAST)
    without = tune_lr(
        ENV, StaticWithLR, name="static", budget=2, env_kwargs={**FAST, "eval_test": False}
    )
    assert with_test == without
    assert "test" not in json.dumps(with_test.to_dict())


def test_best_score_and_held_out_seed():
    res = tune_lr(ENV, StaticWithLR, name="static", budget=2, env_kwargs=FAST, score="best")
    for t in res.trials:
        assert t.score == t.best_val_metric >= t.final_val_metric
    with pytest.raises(ValueError, match="evaluation seed"):
        tune_lr(ENV, StaticWithLR, name="static", seed=3, eval_seeds=range(5))
    with pytest.raises(ValueError, match="score"):
        tune_lr(ENV, StaticWithLR, name="static", score="test")  # type: ignore[arg-type]


def test_diverged_trials_score_minus_inf():
    # lr0 = 1e4 (and 1e3) diverges for SGD on digits at every trial: keep the first, warn.
    with pytest.warns(UserWarning, match="diverged"):
        res = tune_lr(ENV, StaticWithLR, name="static", budget=2, env_kwargs=FAST, base_lr=1e4)
    assert all(t.diverged and t.score == -math.inf for t in res.trials)
    assert res.best == 0


@pytest.mark.parametrize("text", ["{not json", "[" * 100_000 + "]" * 100_000,
                                  '{"version": 1, "entries": ' + "[" * 100_000 + "]" * 100_000
                                  + "}", "\udcff"])
def test_corrupt_cache_is_rebuilt_with_warning(tmp_path, text):
    cache = tmp_path / "tuning.json"
    cache.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.warns(UserWarning, match="unreadable"):
        res = tune_lr(ENV, StaticWithLR, name="static", budget=1, env_kwargs=FAST, cache=cache)
    assert (tmp_path / "tuning.json.corrupt").read_bytes() == text.encode("utf-8",
                                                                          "surrogateescape")
    make = CountingMake()
    assert tune_lr(ENV, make, name="static", budget=1, env_kwargs=FAST, cache=cache) == res
    assert make.lrs == []


def test_non_json_env_kwargs_with_cache_raise(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        tune_lr(
            ENV,
            StaticWithLR,
            name="static",
            budget=1,
            env_kwargs={"total_steps": object()},
            cache=tmp_path / "c.json",
        )
