"""The resume state of a deployed controller: one schema, checked before anything is restored.

:meth:`LRController.state_dict <lr_gym.control.LRController.state_dict>` is plain data
that a training checkpoint carries (a torch checkpoint, the Hugging Face Trainer's
``lr_controller.json``, a Lightning checkpoint). Loaded back, it is input like a
controller file: truncated, edited, or saved by another controller. :func:`check_state`
reads it against the controller it is loaded into (:class:`StateSpec`) and returns a
clean copy, or raises :class:`ControllerStateError`: one line naming where the state came
from, the field, its valid range and the fix. Nothing is restored from an unchecked state.

The schema (``T``: the budget, ``K``: steps per decision; every number finite unless
said otherwise):

* binding: ``controller_sha256`` is the content digest of the controller file that saved
  it (weights and rule, not provenance: :func:`~lr_gym.control.file.content_digest`),
  ``controller`` its name for messages; ``total_steps``, ``steps_per_action``, ``lr0``,
  ``group_lr0`` and the tracker's ``lr0``, half-lives, features and chance loss equal
  this controller's. A state of another controller is refused, naming both.
* progress: ``0 <= t <= T`` (0 before the first decision, ``started`` false), and
  ``t - K <= interval_start <= t``.
* the LR rule: ``multiplier > 0``, ``-1 <= action <= 1``, ``0 < scale <= 1``,
  ``0 <= blocked <= 2`` (:data:`~lr_gym.lr_rule.BACK_OFF_BLOCK`), ``raised`` a bool, and
  ``lr_min < lr_max`` inside this controller's own bounds, which come from the controller
  file (or the ``lr_min``/``lr_max`` it was built with).
* the interval: at most ``2 K`` ``losses`` (any float: non-finite ones are skipped),
  ``0 <= skipped_losses <= 2 t``, ``grad_norm >= 0`` or NaN (not measured yet).
* the tracker's running statistics: ``initial_loss > 0``; the loss EMAs, the previous
  and best validation losses, ``_vs_chance``; ``_grad0``, ``_prev_grad``, ``_d_first``
  and ``_d_prev`` > 0 or null; ``_prev_mean_loss`` and ``_prev_gap`` or null; one EMA or
  null per step-size feature.
* the last decision: ``last_obs`` (one value per feature, within the observation bound)
  and ``last_val`` (validation loss and metric), both null before the first decision;
  at most ``t + 1`` ``history`` entries ``[step <= t, action, lr >= 0]``, and
  ``0 <= guard_restores <= len(history)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lr_gym.config import check_int, check_real
from lr_gym.features import OBS_BOUND, STEP_FEATURES, FeatureTracker
from lr_gym.lr_rule import BACK_OFF_BLOCK

FIX = ("load the state that this controller's state_dict() saved, unedited, into the "
       "controller file, optimizer and budget it was saved with")
"""The fix every refusal ends with, unless a more precise one applies."""

LOSSES_PER_STEP = 2
"""Losses an interval may hold per step: ``step(loss)``, or ``step()`` then ``record(loss)``
(the Trainer's order), with room for one extra ``record``."""

STATE_KEYS = ("controller", "controller_sha256", "total_steps", "steps_per_action", "t",
              "started", "interval_start", "losses", "skipped_losses", "grad_norm",
              "multiplier", "action", "scale", "blocked", "raised", "lr0", "group_lr0",
              "lr_min", "lr_max", "tracker", "last_obs", "last_val", "history",
              "guard_restores")
"""The keys of a state, exactly (an unknown key is refused: it could shadow anything)."""

TRACKER_CONSTANTS = ("lr0", "short_halflife", "long_halflife", "features", "chance_loss")
"""The tracker keys a state holds before the first decision; they equal this controller's."""

TRACKER_STATS = ("initial_loss", "_short", "_long", "_grad0", "_prev_grad", "_prev_val",
                 "_best_val", "_a_short", "_a_long", "_prev_mean_loss", "_step_emas",
                 "_prev_gap", "_d_first", "_d_prev", "_vs_chance")
"""The tracker keys the first decision adds: its running statistics."""

_MESSAGE_CHARS = 240
"""How much of a value or detail a message quotes (a 10M-item list must not be quoted)."""


class ControllerStateError(ValueError):
    """A resume state that does not fit the controller; one line with the fix."""


@dataclass(frozen=True)
class StateSpec:
    """What a state must match: the controller it is loaded into.

    Attributes:
        controller: The controller's name, for messages (a pretrained name or file).
        sha256: Its content digest (:attr:`ControllerPolicy.content_sha256`).
        total_steps: Its budget ``T``.
        steps_per_action: Its steps per decision ``K``.
        lr0: Its reference LR.
        group_lr0: Every param group's initial LR.
        lr_min: Its lowest LR.
        lr_max: Its highest LR (``inf``: no cap).
        features: Its observed features.
        short_halflife: Its tracker's short half-life.
        long_halflife: Its tracker's long half-life.
        chance_loss: Its tracker's loss at chance (None: unknown).
    """

    controller: str
    sha256: str
    total_steps: int
    steps_per_action: int
    lr0: float
    group_lr0: tuple[float, ...]
    lr_min: float
    lr_max: float
    features: tuple[str, ...]
    short_halflife: float
    long_halflife: float
    chance_loss: float | None = None

    def tracker_constants(self) -> dict[str, Any]:
        """The tracker's constants as this controller computes them (``_a_*``: its EMA rates)."""
        tracker = FeatureTracker(self.lr0, self.short_halflife, self.long_halflife,
                                 self.features, self.chance_loss)
        tracker.reset(1.0, 0.0)
        state = tracker.state_dict()
        return {k: state[k] for k in (*TRACKER_CONSTANTS, "_a_short", "_a_long")}


def _clip(text: str) -> str:
    """``text`` on one line, cut to :data:`_MESSAGE_CHARS`."""
    text = " ".join(str(text).split())
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "..."


class _Reader:
    """Checks one state, naming where it came from in every refusal."""

    def __init__(self, source: str) -> None:
        self.source = source

    def refuse(self, detail: str, fix: str = FIX) -> ControllerStateError:
        return ControllerStateError(f"{self.source}: {_clip(detail)}; {fix}.")

    def real(self, name: str, value: object, **bounds: Any) -> float:
        try:
            return check_real(name, value, **bounds)
        except (TypeError, ValueError) as err:
            raise self.refuse(str(err).rstrip(".")) from None

    def integer(self, name: str, value: object, lo: int, hi: int) -> int:
        try:
            return check_int(name, value, lo=lo, hi=hi)
        except (TypeError, ValueError) as err:
            raise self.refuse(str(err).rstrip(".")) from None

    def flag(self, name: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.refuse(f"{name} must be true or false, got {value!r}")
        return value

    def optional(self, name: str, value: object, **bounds: Any) -> float | None:
        return None if value is None else self.real(name, value, **bounds)

    def any_float(self, name: str, value: object) -> float:
        """A real number that may be NaN or infinite (a loss to skip, a grad norm)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self.refuse(f"{name} must be a number, got {value!r}")
        return float(value)

    def items(self, name: str, value: object, lo: int, hi: int) -> Sequence[Any]:
        if not isinstance(value, (list, tuple)):
            raise self.refuse(f"{name} must be a list, got {type(value).__name__}")
        if not lo <= len(value) <= hi:
            raise self.refuse(f"{name} has {len(value):,} items; it must have "
                              f"{lo}" + ("" if lo == hi else f" to {hi:,}"))
        return value

    def mapping(self, name: str, value: object, keys: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.refuse(f"{name} must be a dict, got {type(value).__name__} {value!r}")
        missing = [k for k in keys if k not in value]
        if missing:
            raise self.refuse(f"{name} lacks {missing} (a state of another lr_gym version, "
                              "or cut short)")
        unknown = sorted(str(k) for k in value if k not in keys)
        if unknown:
            raise self.refuse(f"{name} has unknown key(s) {unknown}")
        return value

    def same(self, name: str, value: object, want: object, fix: str = FIX) -> None:
        if value != want:
            raise self.refuse(f"{name} is {value!r} in the state but {want!r} in this "
                              "controller", fix)


def check_state(state: object, spec: StateSpec, source: str) -> dict[str, Any]:
    """A clean copy of ``state`` that fits the controller of ``spec`` (see the module).

    Args:
        state: What :meth:`LRController.state_dict` saved (or anything claiming to be).
        spec: The controller it is loaded into.
        source: Where the state came from, for messages (a file, an argument).

    Returns:
        The state with every number a Python ``float``/``int`` and the tracker's
        constants taken from ``spec``, ready to restore.

    Raises:
        ControllerStateError: The first broken rule, in one line with the fix.
    """
    r = _Reader(source)
    s = r.mapping("the state", state, STATE_KEYS)
    _check_binding(r, s, spec)
    total, k = spec.total_steps, spec.steps_per_action
    started = r.flag("started", s["started"])
    t = r.integer("t", s["t"], 0, total if started else 0)
    start = r.integer("interval_start", s["interval_start"], max(t - k, 0), t)
    if not started:  # nothing has been decided yet
        r.same("last_obs", s["last_obs"], None)
        r.same("last_val", s["last_val"], None)
    losses = [r.any_float(f"losses[{i}]", x) for i, x in enumerate(
        r.items("losses", s["losses"], 0, LOSSES_PER_STEP * k))]
    grad_norm = r.any_float("grad_norm", s["grad_norm"])
    if grad_norm < 0:
        raise r.refuse(f"grad_norm must be >= 0 or NaN, got {grad_norm}")
    lr_min = r.real("lr_min", s["lr_min"], lo=spec.lr_min, hi=spec.lr_max, hi_open=True)
    lr_max = r.real("lr_max", s["lr_max"], lo=lr_min, lo_open=True, hi=spec.lr_max,
                    allow_inf=math.isinf(spec.lr_max))
    history = [_entry(r, i, h, t) for i, h in enumerate(r.items("history", s["history"], 0,
                                                                 t + 1))]
    n_obs = len(spec.features)
    return {
        "controller": s["controller"],
        "controller_sha256": spec.sha256,
        "total_steps": total,
        "steps_per_action": k,
        "t": t,
        "started": started,
        "interval_start": start,
        "losses": losses,
        "skipped_losses": r.integer("skipped_losses", s["skipped_losses"], 0,
                                    LOSSES_PER_STEP * t),
        "grad_norm": grad_norm,
        "multiplier": r.real("multiplier", s["multiplier"], lo=0.0, lo_open=True),
        "action": r.real("action", s["action"], lo=-1.0, hi=1.0),
        "scale": r.real("scale", s["scale"], lo=0.0, lo_open=True, hi=1.0),
        "blocked": r.integer("blocked", s["blocked"], 0, BACK_OFF_BLOCK),
        "raised": r.flag("raised", s["raised"]),
        "lr0": spec.lr0,
        "group_lr0": list(spec.group_lr0),
        "lr_min": lr_min,
        "lr_max": lr_max,
        "tracker": _tracker(r, s["tracker"], spec, started),
        "last_obs": None if not started else [
            r.real(f"last_obs[{i}]", x, lo=-OBS_BOUND, hi=OBS_BOUND)
            for i, x in enumerate(r.items("last_obs", s["last_obs"], n_obs, n_obs))],
        "last_val": None if not started else [
            r.real(f"last_val[{i}]", x) for i, x in enumerate(
                r.items("last_val", s["last_val"], 2, 2))],
        "history": history,
        "guard_restores": r.integer("guard_restores", s["guard_restores"], 0, len(history)),
    }


def _check_binding(r: _Reader, s: Mapping[str, Any], spec: StateSpec) -> None:
    """Checks the state was saved by this controller, with its budget and LRs.

    Args:
        r: The reader (for messages).
        s: The state's top-level mapping.
        spec: The controller it is loaded into.

    Raises:
        ControllerStateError: Another controller's state, or another budget or lr0.
    """
    if not isinstance(s["controller"], str):
        raise r.refuse(f"controller must be a name, got {s['controller']!r}")
    if s["controller_sha256"] != spec.sha256:
        raise r.refuse(
            f"the state was saved by controller {s['controller']!r} (content "
            f"{str(s['controller_sha256'])[:12]}) but this is {spec.controller!r} (content "
            f"{spec.sha256[:12]})",
            f"resume with the controller file that saved it, or start {spec.controller!r} "
            "afresh without this state")
    budget = "resume with the total_steps and steps_per_action it was saved with"
    r.same("total_steps", s["total_steps"], spec.total_steps, budget)
    r.same("steps_per_action", s["steps_per_action"], spec.steps_per_action, budget)
    lr_fix = ("build the optimizer with the lr (and param groups) it was saved with, or "
              "pass the same lr0=")
    r.same("lr0", s["lr0"], spec.lr0, lr_fix)
    groups = len(spec.group_lr0)
    r.same("group_lr0", list(r.items("group_lr0", s["group_lr0"], groups, groups)),
           list(spec.group_lr0), lr_fix)


def _entry(r: _Reader, i: int, entry: object, t: int) -> list[Any]:
    """``history[i]``: ``[step, action, lr]`` of one decision."""
    step, action, lr = r.items(f"history[{i}]", entry, 3, 3)
    return [r.integer(f"history[{i}][0]", step, 0, t),
            r.real(f"history[{i}][1]", action, lo=-1.0, hi=1.0),
            r.real(f"history[{i}][2]", lr, lo=0.0)]


def _tracker(r: _Reader, value: object, spec: StateSpec, started: bool) -> dict[str, Any]:
    """The feature tracker's state: this controller's constants, checked running stats."""
    keys = TRACKER_CONSTANTS + (TRACKER_STATS if started else ())
    tracker = r.mapping("tracker", value, keys)
    constants = spec.tracker_constants()
    for key in keys:
        if key in constants:
            given = tracker[key]
            r.same(f"tracker.{key}", list(given) if isinstance(given, (list, tuple)) else given,
                   list(constants[key]) if key == "features" else constants[key])
    out = {key: constants[key] for key in TRACKER_CONSTANTS}
    out["features"] = list(constants["features"])  # plain data, as state_dict() gives it
    if not started:
        return out
    emas = r.mapping("tracker._step_emas", tracker["_step_emas"], STEP_FEATURES)
    out.update(
        initial_loss=r.real("tracker.initial_loss", tracker["initial_loss"], lo=0.0,
                            lo_open=True),
        _a_short=constants["_a_short"], _a_long=constants["_a_long"],
        _grad0=r.optional("tracker._grad0", tracker["_grad0"], lo=0.0, lo_open=True),
        _prev_grad=r.optional("tracker._prev_grad", tracker["_prev_grad"], lo=0.0,
                              lo_open=True),
        _prev_mean_loss=r.optional("tracker._prev_mean_loss", tracker["_prev_mean_loss"]),
        _prev_gap=r.optional("tracker._prev_gap", tracker["_prev_gap"]),
        _d_first=r.optional("tracker._d_first", tracker["_d_first"], lo=0.0, lo_open=True),
        _d_prev=r.optional("tracker._d_prev", tracker["_d_prev"], lo=0.0, lo_open=True),
        _step_emas={name: r.optional(f"tracker._step_emas.{name}", emas[name])
                    for name in STEP_FEATURES},
    )
    for key in ("_short", "_long", "_prev_val", "_best_val", "_vs_chance"):
        out[key] = r.real(f"tracker.{key}", tracker[key])
    return out


def check_scheduler_state(state: object, own: Mapping[str, Any], source: str
                          ) -> dict[str, Any]:
    """The torch scheduler's own fields of an ``LRControllerScheduler`` state, checked.

    ``own`` is this scheduler's current state (without the controller): its keys are the
    only ones accepted (an extra key such as ``step`` would replace a method), each value
    has the type of this scheduler's own (a list: as many finite numbers), and counters
    lie in ``[-1, MAX_TOTAL_STEPS]``.

    Returns:
        The checked fields and ``controller`` (the controller's state, unchecked here).

    Raises:
        ControllerStateError: The first broken rule, in one line with the fix.
    """
    from lr_gym.config import MAX_TOTAL_STEPS

    r = _Reader(source)
    s = r.mapping("the state_dict", state, [*own, "controller"])
    out: dict[str, Any] = {"controller": s["controller"]}
    for key, mine in own.items():
        value = s[key]
        if isinstance(mine, bool):
            out[key] = r.flag(key, value)
        elif isinstance(mine, int):
            out[key] = r.integer(key, value, -1, MAX_TOTAL_STEPS)
        elif isinstance(mine, (list, tuple)):
            out[key] = [r.real(f"{key}[{i}]", x) for i, x in enumerate(
                r.items(key, value, len(mine), len(mine)))]
        else:
            r.same(key, value, mine)
            out[key] = mine
    return out
