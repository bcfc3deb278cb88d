"""Typed configuration of an :class:`~lr_gym.envs.LRControlEnv`."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal

from lr_gym.features import DEFAULT_FEATURES, V3_FEATURES, check_features
from lr_gym.lr_rule import LR_MAX_FACTOR, LR_MIN_FACTOR
from lr_gym.reproducibility import DEFAULT_TORCH_THREADS
from lr_gym.schedules import SCHEDULES

Mode = Literal["anchored", "recursive"]
Reward = Literal["val_loss", "val_loss_area", "train_loss", "metric", "terminal_metric",
                 "paired"]
Schedule = Literal["constant", "cosine", "linear", "exponential", "wsd", "step",
                   "warmup_cosine", "onecycle"]
Base = Literal["task", "prodigy"]


MAX_TOTAL_STEPS = 10_000_000
"""The largest budget ``T``: ten million optimizer steps is days of training for the
smallest model here, so more is a typo; it also bounds what a torch-built base schedule
precomputes (one factor per step)."""

MAX_TORCH_THREADS = 1024
"""More intra-op threads than any machine has cores: a typo, not a setting."""

REWARDS = ("val_loss", "val_loss_area", "train_loss", "metric", "terminal_metric", "paired")

BASES = ("task", "prodigy")
"""``EnvConfig.base`` values: the task's own optimizer, or Prodigy (:mod:`lr_gym.bases`)."""


@dataclass(frozen=True)
class EnvConfig:
    """How the learning rate is controlled, observed and rewarded.

    Every field can be passed as a keyword to ``gym.make``, e.g.
    ``gym.make("lr_gym/Digits-MLP-v1", mode="recursive", max_factor=2.0)``.

    Attributes:
        mode: ``"anchored"``: ``lr_t = lr0 * schedule(t) * m(a)``, a bounded residual
            around the base schedule, re-decided every interval. ``"recursive"``:
            ``M <- M * m(a)`` and ``lr_t = lr0 * schedule(t) * M``, the plain LR
            multiplier, which can drift arbitrarily far (within ``lr_min``/``lr_max``).
        schedule: Base schedule over the budget: ``"constant"``, ``"cosine"`` (to
            ``final_lr_frac``), ``"linear"`` (to ``final_lr_frac``), ``"exponential"``
            (geometric, to ``final_lr_frac`` > 0), ``"wsd"`` (warmup-stable-decay: a
            ``1 - sqrt`` cooldown to ``final_lr_frac`` over the last 20%), or one built by
            torch's own schedulers: ``"step"`` (x0.1 at 50% and 75%), ``"warmup_cosine"``
            (AlgoPerf: linear warmup then cosine), ``"onecycle"`` (see
            :func:`lr_gym.schedules.make_torch_scheduler`).
        warmup_frac: Fraction of the budget with linear warmup from 0 (AlgoPerf: 0.02).
        final_lr_frac: Final base LR as a fraction of ``lr0`` for decaying schedules.
        max_factor: Largest multiplier per action, ``m(a) = max_factor ** a`` for
            ``a`` in [-1, 1].
        lr_min: Lowest LR (finite, >= 0); ``None`` means ``lr0 * lr_min_factor``.
        lr_max: Highest LR (> 0, ``inf`` for no cap); ``None`` means
            ``lr0 * lr_max_factor``.
        lr_min_factor: ``lr_min`` as a factor of ``lr0`` when ``lr_min`` is None
            (in (0, 1]; default 1e-3).
        lr_max_factor: ``lr_max`` as a factor of ``lr0`` when ``lr_max`` is None
            (>= 1, finite; default 30).
        reward: ``"val_loss"`` (log decrease of validation loss, telescopes to
            ``log(L0 / L_T)``), ``"val_loss_area"`` (speed-aware: ``log(L0 / L_t)``
            weighted by the interval's share ``K / T`` of the budget, so the episode
            sum is the area under the log-loss curve), ``"train_loss"`` (same on the
            train-loss EMA),
            ``"metric"`` (gain of the validation metric), ``"terminal_metric"``
            (validation metric at the end of the budget, 0 before) or ``"paired"``
            (against a reference run of the same task and seed, :mod:`lr_gym.reference`:
            the change of ``log(L_ref / L)``, whose sum is ``log(L_ref(T) / L(T))``
            clipped to ``+-paired_clip``).
        reward_scale: Multiplies every non-penalty reward (finite, > 0).
        divergence_factor: The run diverged if a training loss is not finite or
            exceeds ``divergence_factor`` times the initial validation loss (> 1; ``inf``
            counts only non-finite losses).
        divergence_penalty: Reward on divergence (subtracted; finite, >= 0).
        total_steps: Optimizer steps per episode (>= 1); ``None`` takes the task's.
        steps_per_action: Optimizer steps per env step (>= 1); ``None`` takes the task's.
        eval_test: Evaluate the task's test split once when the budget runs out.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``.
        features: Observed features, in order (names from
            :data:`lr_gym.features.ALL_FEATURES`; default
            :data:`~lr_gym.features.DEFAULT_FEATURES`). The observation has one entry each.
        optimizer_sets_lr: The inner optimizer adapts its own LR (e.g. hypergradient
            descent): the env never writes group LRs, ignores actions, and reports the
            first param group's LR in observations and ``info["lr"]``.
        reference: The fixed rule of the paired reward's reference run: ``"static"``
            (lr0 on a constant schedule) or ``"base"`` (this config's own rule with every
            action 0).
        paired_clip: The paired reward's episode sum is clipped to ``[-c, c]``.
        action_cost: ``beta``: every reward loses ``beta * a**2``, so a policy keeps
            ``|a|`` near 0 unless moving pays (finite, >= 0).
        base: The optimizer the LR rule drives: ``"task"`` (the task's own) or
            ``"prodigy"`` (Prodigy at ``lr=1.0`` in its place, :mod:`lr_gym.bases`: the
            rule scales Prodigy's ``lr``, every action 0 is Prodigy, and the task's
            ``lr0`` is ignored, as Prodigy ignores it).
        guard: Roll the run back to its best validation loss when it blows up, and back
            the LR off (:mod:`lr_gym.guard`); a guarded divergence does not end the episode.
        event_prob: Chance that an episode has one event in 20-80% of its budget (a batch
            size change, label noise or a data-subset switch: :mod:`lr_gym.events`).
        torch_threads: Torch threads of the episode's work (>= 1; default 1, so that
            episodes run side by side scale by processes). The count fixes the order of
            float reductions, so with it pinned an episode is bit-reproducible on CPU
            (:mod:`lr_gym.reproducibility`; CPU runs also use torch's deterministic
            algorithms). ``None`` keeps the process's setting: faster for one large
            model on many cores, but the run then depends on the machine and its load.
    """

    # The design's LR multiplier; trained controllers carry their own mode (the packaged
    # PPO hyperparameters use the dev-chosen anchored mode: docs/experiments.md, "Action mode").
    mode: Mode = "recursive"
    schedule: Schedule = "constant"
    warmup_frac: float = 0.0
    final_lr_frac: float = 0.0
    max_factor: float = 2.0
    lr_min: float | None = None
    lr_max: float | None = None
    lr_min_factor: float = LR_MIN_FACTOR
    lr_max_factor: float = LR_MAX_FACTOR
    reward: Reward = "val_loss"
    reward_scale: float = 1.0
    divergence_factor: float = 10.0
    divergence_penalty: float = 5.0
    total_steps: int | None = None
    steps_per_action: int | None = None
    eval_test: bool = True
    device: str = "cpu"
    optimizer_sets_lr: bool = False
    features: tuple[str, ...] = DEFAULT_FEATURES
    reference: Literal["static", "base"] = "static"
    paired_clip: float = 3.0
    action_cost: float = 0.0
    base: Base = "task"
    guard: bool = False
    event_prob: float = 0.0
    torch_threads: int | None = DEFAULT_TORCH_THREADS

    def __post_init__(self) -> None:
        # YAML and JSON give lists; a frozen dataclass keeps the hashable tuple.
        object.__setattr__(self, "features", check_features(self.features))
        # Every field is checked here: a bad value must fail at construction, not turn
        # into NaN rewards (which poison PPO) or a silently different run.
        _check_choice("mode", self.mode, ("anchored", "recursive"))
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("reward", self.reward, REWARDS)
        check_real("warmup_frac", self.warmup_frac, lo=0.0, hi=1.0, hi_open=True)
        check_real("final_lr_frac", self.final_lr_frac, lo=0.0, hi=1.0)
        if self.schedule == "exponential" and self.final_lr_frac == 0:
            raise ValueError("schedule='exponential' decays to final_lr_frac, which must be > 0; "
                             "set e.g. final_lr_frac=0.1, or use 'linear' to decay to 0.")
        check_real("max_factor", self.max_factor, lo=1.0, lo_open=True)
        if self.lr_min is not None:
            check_real("lr_min", self.lr_min, lo=0.0)
        if self.lr_max is not None:
            check_real("lr_max", self.lr_max, lo=0.0, lo_open=True, allow_inf=True)
        if self.lr_min is not None and self.lr_max is not None and not self.lr_min < self.lr_max:
            raise ValueError(
                f"lr_min ({self.lr_min}) must be below lr_max ({self.lr_max})."
            )
        check_real("lr_min_factor", self.lr_min_factor, lo=0.0, lo_open=True, hi=1.0)
        check_real("lr_max_factor", self.lr_max_factor, lo=1.0)
        check_real("reward_scale", self.reward_scale, lo=0.0, lo_open=True)
        _check_choice("reference", self.reference, ("static", "base"))
        _check_choice("base", self.base, BASES)
        check_real("paired_clip", self.paired_clip, lo=0.0, lo_open=True)
        check_real("action_cost", self.action_cost, lo=0.0)
        check_real("event_prob", self.event_prob, lo=0.0, hi=1.0)
        check_real("divergence_factor", self.divergence_factor, lo=1.0, lo_open=True,
                   allow_inf=True)
        check_real("divergence_penalty", self.divergence_penalty, lo=0.0)
        for name in ("total_steps", "steps_per_action"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), lo=1, hi=MAX_TOTAL_STEPS,
                          none_hint=" (or None: the task's)")
        if self.torch_threads is not None:
            check_int("torch_threads", self.torch_threads, lo=1,
                      none_hint=" (or None: the process's own setting)")
            if self.torch_threads > MAX_TORCH_THREADS:  # torch would start them all
                raise ValueError(f"torch_threads must be <= {MAX_TORCH_THREADS}, got "
                                 f"{self.torch_threads}.")
        for name in ("eval_test", "optimizer_sets_lr", "guard"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a string such as 'cpu', 'cuda' or 'auto', got "
                            f"{self.device!r}.")

    def replace(self, **overrides: Any) -> EnvConfig:
        """Returns a copy with ``overrides``; unknown names raise a clear error."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"Unknown EnvConfig option(s) {unknown}. Valid options: {sorted(known)}."
            )
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON friendly: tuples become lists)."""
        d = dataclasses.asdict(self)
        d["features"] = list(d["features"])
        return d


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {list(choices)}.")


def _range(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    return " and ".join(parts)


def check_real(
    name: str,
    value: object,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Checks that ``value`` is a real number in a range; returns it as a float.

    Raises:
        TypeError: Not a real number (``bool`` and strings included).
        ValueError: NaN, infinite (unless ``allow_inf``) or out of range; the message
            names ``name`` and the valid range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    x = float(value)
    bad = math.isnan(x) or (math.isinf(x) and not allow_inf)
    bad = bad or (lo is not None and (x <= lo if lo_open else x < lo))
    bad = bad or (hi is not None and (x >= hi if hi_open else x > hi))
    if bad:
        # Without bounds the rule is only "finite" (or, with allow_inf, "not NaN").
        rule = ", ".join(w for w in (_range(lo, hi, lo_open, hi_open),
                                     "" if allow_inf else "finite") if w)
        raise ValueError(f"{name} must be {rule or 'not NaN'}, got {x}.")
    return x


def check_int(name: str, value: object, *, lo: int | None = None, hi: int | None = None,
              none_hint: str = "") -> int:
    """Checks that ``value`` is an integer (not a bool) in ``[lo, hi]``; returns it as an int.

    Raises:
        TypeError: Not an integer.
        ValueError: Out of range; the message names ``name`` and the valid range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer{none_hint}, got {value!r} "
                        f"({type(value).__name__}).")
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be >= {lo}{none_hint}, got {value}.")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi:,}{none_hint}, got {value:,}.")
    return int(value)


V2_ENV_KWARGS: dict[str, Any] = {
    "mode": "recursive", "schedule": "constant", "warmup_frac": 0.0, "max_factor": 2.0,
    "lr_min_factor": 0.01, "lr_max_factor": 100.0, "features": DEFAULT_FEATURES,
    "reward": "paired", "action_cost": 0.01, "event_prob": 0.3,
}
"""The v2 training envs' settings (controller v2): a multiplier around static (every
action 0 is static exactly, and it reaches x0.01-x100 of lr0), the paired reward against
static with a small action cost, and events in 30% of the episodes. The observation is
v1's: of the feature sets checked before any PPO (``benchmarks/learnability.py``), only
v1's reached the stated AUC of 0.7 (0.702; :data:`~lr_gym.features.V2_FEATURES` 0.694),
so the step-size features stay an option by name, not the default."""



V3_ENV_KWARGS: dict[str, Any] = {
    "base": "prodigy", "mode": "anchored", "schedule": "linear", "final_lr_frac": 0.0,
    "warmup_frac": 0.0, "max_factor": 4.0, "lr_min": 0.0, "lr_max_factor": 100.0,
    "features": V3_FEATURES, "reward": "paired", "reference": "base", "action_cost": 0.01,
    "event_prob": 0.3,
}
"""Controller v3's rule: a bounded residual over the best fixed schedule. Every action 0
is the fixed decay chosen on dev (``benchmarks/results/headroom``: linear to 0 of
Prodigy's lr, on ``lr_gym/default``'s base), exactly (``lr_min=0``, as the schedule
baselines), and an action ``a`` scales it by ``4 ** a`` for its interval (anchored:
the residual is re-decided every decision, never drifts). The paired reward's reference
is that schedule (``reference="base"``), so PPO is paid for what the policy adds over
open-loop control; the observation is :data:`~lr_gym.features.V3_FEATURES`."""
