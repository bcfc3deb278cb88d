"""Open-loop controls of a learned controller: what does its feedback loop add?

A controller that reads the run earns its place only where it beats every schedule that
cannot read it. Three controls answer that, each run on the learned controller's own LR
rule (its ``base`` optimizer, base schedule and LR bounds: ``controller_kwargs``, the
controller's ``env_kwargs()``), so that only the feedback differs:

* ``replay`` (:class:`AvgLRReplay`): the controller's own mean LR per interval on the
  evaluated env, replayed blind to the state. It uses the evaluated env's own learned
  runs, so it is a diagnostic, not a schedule one could know in advance.
* ``learned_schedule`` (:class:`LearnedSchedule`): the controller's mean LR factor
  against training progress over the dev families (:func:`learned_schedule_from`),
  computed once and frozen: one fixed schedule for every env. Does a fixed schedule
  learned from the same experience do as well?
* ``fixed_decay`` (:func:`fixed_decay`): the member of a small family of fixed decays
  (:data:`FIXED_DECAYS`: linear and cosine to 0, exponential to r, warmup-stable-decay)
  chosen on dev by the rule of :func:`choose_fixed_decay`, stated before any run.

:class:`OpenLoopControls` holds what dev fixed (the learned schedule and the chosen
decay) for one controller; :mod:`agents.evaluation.controls` computes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from agents.baselines.base import Controller, ScheduleBaseline, action_array
from agents.common.runs import write_text_atomic
from lr_gym.lr_rule import multiplier_to_action

if TYPE_CHECKING:
    from agents.evaluation.rollout import EpisodeResult

CONTROLS = ("replay", "learned_schedule", "fixed_decay")
"""The open-loop controls of a learned controller, by table name."""

RULE_KEYS = ("base", "schedule", "warmup_frac", "final_lr_frac", "lr_min", "lr_max",
             "lr_min_factor", "lr_max_factor")
"""The fields of a controller's ``env_kwargs()`` that make its LR rule, which every
control runs on (its base optimizer, base schedule and LR bounds)."""

FIXED_DECAYS: dict[str, tuple[str, float]] = {
    "linear": ("linear", 0.0),
    "cosine": ("cosine", 0.0),
    "exp0.3": ("exponential", 0.3),
    "exp0.1": ("exponential", 0.1),
    "exp0.03": ("exponential", 0.03),
    "wsd": ("wsd", 0.0),
}
"""The fixed-decay family, ``member: (schedule, final_lr_frac)``, in the order that
breaks ties: linear to 0 (Defazio et al. 2023: beats cosine across 10 problems), cosine
to 0, exponential to 0.3, 0.1 and 0.03 of the base LR, and warmup-stable-decay with a
20% ``1 - sqrt`` cooldown to 0 (Hägele et al. 2024). No warmup: the LR-free base needs
none, and the task's own optimizer gets the same family."""


def rule_kwargs(controller_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The LR-rule part (:data:`RULE_KEYS`) of a controller's ``env_kwargs()``."""
    return {k: v for k, v in (controller_kwargs or {}).items() if k in RULE_KEYS}


def fixed_decay(member: str, controller_kwargs: Mapping[str, Any] | None = None,
                name: str | None = None) -> ScheduleBaseline:
    """A member of :data:`FIXED_DECAYS` on the controller's base optimizer.

    The LR is exactly the decay's (``lr_min=0``, as every schedule baseline), from the
    rule's ``lr0`` (the task's, or 1.0 over ``base="prodigy"``). Untuned, like the
    learned controller it controls for.

    Args:
        member: A key of :data:`FIXED_DECAYS`.
        controller_kwargs: The learned controller's ``env_kwargs()`` (only ``base`` is used).
        name: Table name; default ``decay:<member>``.

    Raises:
        KeyError: An unknown member; the message lists them.
    """
    if member not in FIXED_DECAYS:
        raise KeyError(f"Unknown fixed decay {member!r}; choose from {list(FIXED_DECAYS)}.")
    schedule, final = FIXED_DECAYS[member]
    base = (controller_kwargs or {}).get("base", "task")
    decay = ScheduleBaseline(schedule, name or f"decay:{member}", final_lr_frac=final, base=base)
    decay.tunable = False
    return decay


# ------------------------------------------------------------- per-interval replays
def mean_interval_lrs(results: Sequence[EpisodeResult]) -> np.ndarray:
    """Geometric mean over ``results`` (seeds) of the LR of each control interval.

    Geometric, not arithmetic: LRs act multiplicatively and spread over decades, so a
    single seed's large LR must not dominate the replayed one (the geometric mean is
    the arithmetic mean of ``log lr``, the scale the controllers act on). An interval
    where any run's LR is 0 has mean 0.

    ``EpisodeResult.lrs[k]`` (``k >= 1``) is the LR of interval ``k - 1`` (its last step).
    A diverged run is shorter: an interval averages the runs that reached it.

    Raises:
        ValueError: No results, or results whose intervals end at different steps.
    """
    if not results:
        raise ValueError("mean_interval_lrs needs at least one EpisodeResult.")
    longest = max(results, key=lambda r: len(r.steps))
    for r in results:
        if r.steps != longest.steps[: len(r.steps)]:
            raise ValueError(
                f"Results differ in their interval steps ({r.steps[:4]}... vs "
                f"{longest.steps[:4]}...): replay results of one env and budget only."
            )
    n = len(longest.lrs) - 1
    with np.errstate(divide="ignore"):  # log(0) = -inf: a zero LR gives a zero mean
        return np.array([
            np.exp(np.mean(np.log([r.lrs[k + 1] for r in results if len(r.lrs) > k + 1])))
            for k in range(n)
        ])


class AvgLRReplay(Controller):
    """Replays a fixed LR per interval (a learned controller's), blind to the state.

    Each interval's LR is the learned controller's geometric mean over seeds
    (:func:`mean_interval_lrs`). Compared with the learned controller on the same task
    and seeds, it tells whether the controller helps by reacting to the run or only by
    finding a better fixed schedule.

    It runs the env anchored on the replayed controller's own LR rule
    (``controller_kwargs``: its ``base`` optimizer, base schedule and LR bounds, see
    :data:`RULE_KEYS`), with a ``max_factor`` large enough to reach any target in one
    action: interval ``k`` gets the constant multiplier ``m_k = target_k / base_lr(last
    step of k)``, so every step of the interval runs at ``lr0 * schedule(t) * m_k``. For
    a controller whose multiplier is constant within an interval (every mode), that is
    its geometric-mean LR at every step, except where the LR bounds clipped the
    interval's last step. Past the last recorded interval (all runs diverged) the last
    target is held. Not tunable: the replayed LRs are the controller's, not derived
    from ``lr0``.

    Args:
        results: The learned controller's episodes on one env (any number of seeds),
            replayed at their per-interval geometric mean LR; or use ``targets``.
        targets: The LR of each interval, if not computed from ``results``.
        controller_kwargs: The replayed controller's ``env_kwargs()``; empty: the
            env's defaults (the task's optimizer on a constant base).
        max_factor: The replay env's ``max_factor``.
        name: Table name.
    """

    tunable = False

    def __init__(
        self,
        results: Sequence[EpisodeResult] | None = None,
        *,
        targets: Sequence[float] | None = None,
        controller_kwargs: Mapping[str, Any] | None = None,
        max_factor: float = 1e6,
        name: str = "replay",
    ) -> None:
        if (results is None) == (targets is None):
            raise ValueError(
                "replay needs the learned controller's EpisodeResults "
                "(results=...) or the per-interval LRs (targets=...), exactly one."
            )
        self.targets = (
            mean_interval_lrs(results) if results is not None else np.asarray(targets, float)
        )
        if self.targets.size == 0 or not np.all(self.targets > 0):
            raise ValueError(f"{name}: the target LRs must be a non-empty positive list.")
        self._rule = rule_kwargs(controller_kwargs)
        self.max_factor, self.name = max_factor, name
        self._k, self._multipliers = 0, np.ones_like(self.targets)

    def env_kwargs(self) -> Mapping[str, Any]:
        """Anchored on the controller's LR rule; the range covers the targets."""
        return {"mode": "anchored", "schedule": "constant", "warmup_frac": 0.0,
                **self._rule, "max_factor": self.max_factor}

    def interval_targets(self, env: Any) -> np.ndarray:
        """The LR of each interval of ``env`` (the unwrapped env, after its reset)."""
        return self.targets

    def reset(self, env: gym.Env, obs: np.ndarray, info: dict[str, Any]) -> None:
        """Turns the target LRs into per-interval multipliers of the env's base schedule."""
        inner = env.unwrapped
        targets = self.interval_targets(inner)
        k, total = inner.steps_per_action, inner.total_steps
        last = [min((i + 1) * k, total) - 1 for i in range(len(targets))]
        base = np.array([inner.base_lr(t) for t in last], dtype=float)
        # A base of 0 (a warmup's first step) cannot be scaled: keep the schedule there.
        self._multipliers = np.where(base > 0, targets / np.where(base > 0, base, 1), 1.0)
        self._k = 0
        m = self._multipliers
        if m.min() < 1.0 / self.max_factor or m.max() > self.max_factor:
            raise ValueError(
                f"{self.name}: targets span {m.min():.3g}..{m.max():.3g} x the base "
                f"schedule, beyond max_factor={self.max_factor:g}; pass a larger max_factor."
            )

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The action that sets this interval's multiplier."""
        m = self._multipliers[min(self._k, len(self._multipliers) - 1)]
        self._k += 1
        return action_array(multiplier_to_action(m, self.max_factor))


# ---------------------------------------------------------------- learned schedule
def learned_schedule_from(results: Sequence[EpisodeResult]) -> tuple[list[float], list[float]]:
    """A controller's mean LR factor against training progress, over many envs' runs.

    Each run is a step function of progress ``p = step / T``: from decision ``k`` (at
    ``steps[k]``) its LR is ``lrs[k + 1]``, as a factor of its rule's ``lr0``
    (``rule_lr0``). The schedule is sampled at every decision's progress of every run,
    each point the geometric mean over the runs that reached it (a diverged run stops
    counting).

    Returns:
        ``(progress, factors)``, progress ascending from 0.

    Raises:
        ValueError: No results, or a result without its budget or ``lr0``.
    """
    if not results:
        raise ValueError("learned_schedule_from needs at least one EpisodeResult.")
    runs = []
    for r in results:
        if not (r.total_steps > 0 and r.rule_lr0 > 0):
            raise ValueError(f"EpisodeResult of {r.env_id} seed {r.seed} lacks total_steps or "
                             "rule_lr0 (recorded by agents.evaluation.rollout.run_episode); "
                             "rerun it.")
        p = np.asarray(r.steps[: len(r.lrs) - 1], float) / r.total_steps
        factors = np.asarray(r.lrs[1:], float) / r.rule_lr0
        runs.append((p, np.log(factors), r.steps[-1] < r.total_steps))
    grid = np.unique(np.round(np.concatenate([p for p, _, _ in runs]), 12))
    logs = []
    for g in grid:
        # The decision in force at progress g; a run that stopped before g is left out.
        vals = [lf[np.searchsorted(p, g, side="right") - 1] for p, lf, short in runs
                if g >= p[0] and not (short and g > p[-1])]
        logs.append(float(np.mean(vals)))
    return [float(g) for g in grid], [math.exp(v) for v in logs]


class LearnedSchedule(AvgLRReplay):
    """A fixed LR schedule against progress (a learned controller's mean), on its rule.

    At decision ``k`` (progress ``p = k K / T``) the interval's LR is ``lr0 * f(p)``, with
    ``f`` the schedule's factor interpolated linearly in ``log f`` between its points
    (held at the ends). The same schedule serves every env, whatever its budget.

    Args:
        progress: The schedule's points, ascending in [0, 1).
        factors: The LR factor of ``lr0`` at each point (> 0).
        controller_kwargs: The learned controller's ``env_kwargs()`` (its LR rule).
        name: Table name.
    """

    def __init__(self, progress: Sequence[float], factors: Sequence[float], *,
                 controller_kwargs: Mapping[str, Any] | None = None,
                 name: str = "learned_schedule") -> None:
        super().__init__(targets=factors, controller_kwargs=controller_kwargs, name=name)
        self.progress = np.asarray(progress, float)
        if self.progress.shape != self.targets.shape or np.any(np.diff(self.progress) <= 0):
            raise ValueError(f"{name}: progress must be ascending, one point per factor.")

    def interval_targets(self, env: Any) -> np.ndarray:
        """``lr0 * f(k K / T)`` for every interval ``k`` of the env's budget."""
        k, total = env.steps_per_action, env.total_steps
        p = np.arange(math.ceil(total / k)) * k / total
        return env.lr0 * np.exp(np.interp(p, self.progress, np.log(self.targets)))


# ------------------------------------------------------------ what dev fixes
def choose_fixed_decay(scores: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """The dev rule, stated before any run: the member with the highest dev score.

    A member's dev score is its final test metric on each dev env (a diverged run
    scores 0), divided by the best member's mean on that env, averaged over envs and
    seeds (each env weighs the same). Ties (within 1e-9) go to the earlier member of
    :data:`FIXED_DECAYS`.

    Args:
        scores: ``{member: {env: [final test metric per seed]}}``.
    """
    norm = normalized_scores(scores)
    return max(FIXED_DECAYS, key=lambda m: (round(norm.get(m, -math.inf), 9),
                                            -list(FIXED_DECAYS).index(m)))


def normalized_scores(scores: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[str, float]:
    """Each method's mean over envs of its mean score divided by the env's best method mean."""
    envs = sorted({e for s in scores.values() for e in s})
    best = {e: max(float(np.mean(s[e])) for s in scores.values() if e in s) for e in envs}
    return {m: float(np.mean([np.mean(s[e]) / best[e] for e in envs if best[e] > 0]))
            for m, s in scores.items()}


@dataclass(frozen=True)
class OpenLoopControls:
    """What the dev families fixed for one learned controller's open-loop controls.

    Attributes:
        agent_sha256: The controller file's content digest.
        progress: The learned schedule's points (:func:`learned_schedule_from`).
        factors: Its LR factors.
        fixed_decay: The dev-chosen member of :data:`FIXED_DECAYS`.
        dev_scores: Every member's dev score (:func:`choose_fixed_decay`).
        envs: The dev envs.
        seeds: The dev seeds.
    """

    agent_sha256: str
    progress: tuple[float, ...]
    factors: tuple[float, ...]
    fixed_decay: str
    dev_scores: Mapping[str, float] = field(default_factory=dict)
    envs: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()

    def controller(self, name: str, controller_kwargs: Mapping[str, Any]) -> Controller:
        """The ``learned_schedule`` or ``fixed_decay`` control on the controller's rule."""
        if name == "learned_schedule":
            return LearnedSchedule(self.progress, self.factors,
                                   controller_kwargs=controller_kwargs, name=name)
        if name == "fixed_decay":
            return fixed_decay(self.fixed_decay, controller_kwargs, name=name)
        raise KeyError(f"No frozen control {name!r}; choose 'learned_schedule' or 'fixed_decay'.")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {**asdict(self), "dev_scores": dict(self.dev_scores)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OpenLoopControls:
        """Inverse of :meth:`to_dict`."""
        return cls(agent_sha256=str(d["agent_sha256"]), progress=tuple(d["progress"]),
                   factors=tuple(d["factors"]), fixed_decay=str(d["fixed_decay"]),
                   dev_scores=dict(d.get("dev_scores", {})), envs=tuple(d.get("envs", ())),
                   seeds=tuple(d.get("seeds", ())))

    def save(self, path: str | Path) -> None:
        """Writes the JSON file (atomically)."""
        write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> OpenLoopControls:
        """Reads :meth:`save`'s file."""
        return cls.from_dict(json.loads(Path(path).read_text()))
