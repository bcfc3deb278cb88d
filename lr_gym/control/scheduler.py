"""``LRController``: a trained controller driving any torch optimizer, like a scheduler."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lr_gym import lr_rule
from lr_gym.bases import effective_lrs, step_size_estimate
from lr_gym.config import MAX_TOTAL_STEPS, EnvConfig, check_int, check_real
from lr_gym.control import distributed
from lr_gym.control.policy import ControllerPolicy
from lr_gym.control.resolve import agent_label, load_controller_file
from lr_gym.control.state import TRACKER_CONSTANTS, StateSpec, check_state
from lr_gym.features import FeatureTracker
from lr_gym.grad_stats import IntervalMeter
from lr_gym.guard import DEFAULT_MEMORY, Guard
from lr_gym.kernel import DecisionKernel, Validation


class LRController:
    """Sets an optimizer's learning rate with a trained controller, like a torch scheduler.

    Usage (see the module docstring): ``observe(val_loss=..., val_metric=...)`` once on
    the untrained model (the first decision), ``step(loss)`` after every optimizer
    step, and ``observe(...)`` again whenever ``eval_due`` is True (every
    ``steps_per_action`` steps). Every param group's LR is scaled from its initial LR
    by the same factor, as in the env. Called this way, the features, actions and LRs
    equal those of :class:`~lr_gym.envs.LRControlEnv` on the same statistics and with
    the same ``guard`` (on here by default, off in the env). Under ``torch.distributed``
    (more than one rank) every rank makes the same decision from inputs averaged over the
    ranks (:mod:`lr_gym.control.distributed`).

    Args:
        optimizer: The optimizer to drive: any ``torch.optim.Optimizer`` for a
            controller of the task's optimizer (``base="task"``, ``"lr_gym/task-base"``),
            ``prodigyopt.Prodigy`` for one of ``base="prodigy"`` (``"lr_gym/default"``);
            :meth:`optimizer_for` builds the right one.
        policy: A controller file, run folder or checkpoint, a pretrained name
            (:data:`~lr_gym.control.PRETRAINED`), or a :class:`ControllerPolicy`.
        total_steps: The optimizer-step budget ``T`` (progress is ``step / T``).
        steps_per_action: Optimizer steps per decision ``K``.
        lr0: Reference LR of the features; default: the first group's initial LR.
        lr_min: Lowest LR; default: the trained rule (``lr0 * 1e-3`` unless set).
        lr_max: Highest LR; default: the trained rule (``lr0 * 30`` unless set).
        guard: Roll the run back to its best validation loss when it blows up and back
            the LR off (:mod:`lr_gym.guard`, the env's ``guard=True``). On by default:
            it won on the dev families (docs/experiments.md). It keeps a copy of the
            model and optimizer state at each new best validation loss in CPU memory
            (never on the accelerator); pass False to save that memory and time (e.g.
            sharded models).
        guard_memory: The guard's budget, in bytes of CPU memory (default
            :data:`lr_gym.guard.DEFAULT_MEMORY`, 8 GiB; None: no limit). A copy larger
            than this turns the guard off, with one warning, before anything is copied.
        guard_dir: A folder to keep the guard's copy in, on disk, instead of memory (then
            ``guard_memory`` does not apply); None: in memory.
        model: The model the optimizer trains, for the guard: its rollback then restores
            buffers such as batch-norm statistics too. Without it the guard restores
            the optimizer's parameters and state only, with one warning.
        chance_loss: Your task's validation loss at chance (``log C`` for C classes),
            for a controller that observes ``loss_vs_chance``; None: unknown (0).
    """

    load = staticmethod(ControllerPolicy.load)
    from_run = staticmethod(load_controller_file)  # a run folder's file; never its pickles

    @classmethod
    def from_pretrained(cls, optimizer: torch.optim.Optimizer, name: str = "lr_gym/default",
                        **kwargs: Any) -> LRController:
        """A controller driven by a shipped pretrained policy (see its model card).

        Args:
            optimizer: The optimizer to drive.
            name: A name of :data:`PRETRAINED` (``"lr_gym/default"``).
            **kwargs: As for :class:`LRController` (``total_steps``,
                ``steps_per_action``, ...).
        """
        return cls(optimizer, load_controller_file(name), **kwargs)

    @staticmethod
    def optimizer_for(policy: str | Path | ControllerPolicy, params: Any,
                      optimizer: type[torch.optim.Optimizer], *, lr: float,
                      **options: Any) -> torch.optim.Optimizer:
        """The optimizer the policy drives, in place of ``optimizer(params, lr=lr, **options)``.

        A controller trained on the task's own optimizer (``base="task"``, e.g.
        ``"lr_gym/task-base"``) gets exactly that; one trained to scale Prodigy's lr
        (``base="prodigy"``, ``"lr_gym/default"``) gets ``Prodigy(params, lr=1.0)`` with
        the counterparts of ``options``, as the env built it in training
        (:func:`lr_gym.bases.base_optimizer`; ``lr`` is then unused), and one warning
        naming each option it drops (SGD's momentum, dampening, Nesterov).

        Args:
            policy: As for :class:`LRController`.
            params: The parameters (or param groups) to optimize.
            optimizer: The optimizer class you would use without a controller.
            lr: Its LR.
            **options: Its other options (momentum, betas, weight decay, ...).
        """
        from lr_gym.bases import base_optimizer, safeguards_warmup

        config = (policy if isinstance(policy, ControllerPolicy)
                  else load_controller_file(policy)).env_config
        return base_optimizer(config.base, params, optimizer, lr=lr,
                              warmup=safeguards_warmup(config), **options)

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        policy: str | Path | ControllerPolicy,
        *,
        total_steps: int,
        steps_per_action: int,
        lr0: float | None = None,
        lr_min: float | None = None,
        lr_max: float | None = None,
        guard: bool = True,
        guard_memory: int | None = DEFAULT_MEMORY,
        guard_dir: str | Path | None = None,
        model: torch.nn.Module | None = None,
        chance_loss: float | None = None,
    ) -> None:
        check_int("total_steps", total_steps, lo=1, hi=MAX_TOTAL_STEPS)
        check_int("steps_per_action", steps_per_action, lo=1)
        if not 1 <= steps_per_action <= total_steps:
            raise ValueError(
                f"Need 1 <= steps_per_action <= total_steps, got steps_per_action="
                f"{steps_per_action}, total_steps={total_steps}."
            )
        self.optimizer = optimizer
        self.policy = (policy if isinstance(policy, ControllerPolicy)
                       else load_controller_file(policy))
        self.config = self.policy.env_config
        _check_base(self.config.base, optimizer)
        self.total_steps, self.steps_per_action = int(total_steps), int(steps_per_action)
        # Torch schedulers record each group's starting LR as "initial_lr"; so does this
        # one, so that a resumed optimizer (whose "lr" is the controller's) keeps its lr0.
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        if self.config.base == "prodigy":
            _check_prodigy_lr(optimizer)
        self._init_lr_range(optimizer, lr0, lr_min, lr_max)
        self.skipped_losses = 0
        """Non-finite training losses skipped so far (one warning at the first)."""
        halflives = self.policy.config.get("tracker", {})
        tracker = FeatureTracker(self.lr0, **halflives, features=self.config.features,
                                 chance_loss=chance_loss)
        # What a resume state must have been saved by: the content, not the file's path.
        self._name = agent_label(self.policy.path) if self.policy.path else "a ControllerPolicy"
        self._content_sha256 = self.policy.content_sha256
        rule = lr_rule.LRState.from_config(
            self.config, lr0=self.lr0, total_steps=self.total_steps, group_lr0=self._group_lr0,
            lr_min=self.lr_min, lr_max=self.lr_max)
        if guard and model is None:
            warnings.warn(
                "LRController's guard (on by default) got no model=, so a rollback restores "
                "the optimizer's parameters but not buffers such as batch-norm statistics; "
                "pass model=model, or guard=False to turn the guard off.",
                UserWarning, stacklevel=2)
        # The env's protocol and divergence rule (a file's own training settings do not
        # apply here), but a non-finite training loss is skipped: a step whose loss
        # overflowed may never have reached the weights (mixed precision skips it).
        self._kernel = DecisionKernel(
            tracker, rule, IntervalMeter(self.config.features),
            distributed.AgreedGuard(optimizer, model, memory=guard_memory, directory=guard_dir)
            if guard else None,
            divergence_factor=EnvConfig.divergence_factor, skip_nonfinite=True)
        self._last_val: tuple[float, float] | None = None
        self._loggers: list[Callable[[dict[str, float], int], None]] = []
        self._update_ratio: float | None = None  # given by the caller, else measured
        self._t = 0
        self._started = False
        self._interval_start = 0
        self._losses: list[Any] = []
        self._grad_norm = math.nan
        self._last_obs: np.ndarray | None = None
        self.history: list[tuple[int, float, float]] = []
        """``(step, action, lr)`` of every decision, for logging."""
        self._apply_lr()

    def _init_lr_range(self, optimizer: torch.optim.Optimizer, lr0: float | None,
                       lr_min: float | None, lr_max: float | None) -> None:
        """Sets ``lr0``, the groups' starting LRs and the ``[lr_min, lr_max]`` bounds.

        Args:
            optimizer: The optimizer driven (its groups' ``initial_lr`` already set).
            lr0: The reference LR (default: the first group's starting LR).
            lr_min: Absolute lower LR bound (default: from the trained config).
            lr_max: Absolute upper LR bound (default: from the trained config).

        Raises:
            ValueError: A non-positive or non-finite ``lr0``, or bounds not ordered.
        """
        self._group_lr0 = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.lr0 = float(lr0) if lr0 is not None else self._group_lr0[0]
        if not (self.lr0 > 0 and math.isfinite(self.lr0)):
            raise ValueError(f"lr0 must be > 0, finite, got {self.lr0}; give the optimizer "
                             "an lr.")
        c = self.config
        if lr_min is not None:
            check_real("lr_min", lr_min, lo=0.0)
        if lr_max is not None:
            check_real("lr_max", lr_max, lo=0.0, lo_open=True, allow_inf=True)
        self.lr_min, self.lr_max = lr_rule.lr_bounds(
            self.lr0,
            lr_min if lr_min is not None else c.lr_min,
            lr_max if lr_max is not None else c.lr_max,
            c.lr_min_factor, c.lr_max_factor,
        )
        if not self.lr_min < self.lr_max:
            raise ValueError(f"lr_min ({self.lr_min:g}) must be below lr_max ({self.lr_max:g}) "
                             f"(lr0={self.lr0:g}).")
        self._bounds = (self.lr_min, self.lr_max)  # a resumed state's lie inside them

    # The run's parts, owned by its decision kernel.
    @property
    def _tracker(self) -> FeatureTracker:
        return self._kernel.tracker

    @property
    def _rule(self) -> lr_rule.LRState:
        return self._kernel.rule

    @property
    def _meter(self) -> IntervalMeter:
        return self._kernel.meter

    @property
    def _guard(self) -> Guard | None:
        return self._kernel.guard

    # ---------------------------------------------------------------- LR rule
    def base_lr(self, step: int) -> float:
        """``lr0 * schedule(step)`` of the trained base schedule."""
        return self._rule.base_lr(step)

    def _apply_lr(self) -> None:
        self._lr = self._rule.apply(self.optimizer, self._t)

    def _interval_len(self) -> int:
        return min(self.steps_per_action, self.total_steps - self._interval_start)

    # -------------------------------------------------------------------- API
    @property
    def eval_due(self) -> bool:
        """True when the current interval is complete and ``observe`` should be called."""
        return self._started and self._t - self._interval_start >= max(self._interval_len(), 1)

    @property
    def last_action(self) -> float:
        """The latest action in [-1, 1] (0 before the first decision)."""
        return self._rule.action

    @property
    def last_observation(self) -> np.ndarray | None:
        """The feature vector of the latest decision."""
        return self._last_obs

    def get_last_lr(self) -> list[float]:
        """The LR of every param group, as torch schedulers report it."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def step(self, loss: float | torch.Tensor | None = None, *, grad_norm: float | None = None
             ) -> None:
        """Records one optimizer step (call it right after ``optimizer.step()``).

        Args:
            loss: The step's training loss (a tensor is not synced until ``observe``);
                None if it arrives later via :meth:`record`.
            grad_norm: The step's gradient norm before clipping; by default it is
                measured from the optimizer's gradients on the interval's last step
                (pass it when you clip gradients or free them before this call).
        """
        if not self._started:
            raise RuntimeError(
                "LRController.step() before the first observe(): call "
                "observe(val_loss=..., val_metric=...) on the untrained model first; the "
                "first decision needs the initial validation loss."
            )
        params = self._params()
        # The step's gradients are still on the parameters: probe them as the env does.
        self._meter.after_backward(self._t - self._interval_start, params)
        self._meter.after_step(params)
        self._t += 1
        self.record(loss, grad_norm=grad_norm)
        if grad_norm is None and self.eval_due and not math.isfinite(self._grad_norm):
            norm = lr_rule.grad_norm(params)
            if norm is not None:
                self._grad_norm = float(norm)
        self._apply_lr()
        self._meter.before_step(self._t - self._interval_start, params)

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def _start_interval(self) -> None:
        """Opens the next interval: fresh statistics, the LR of its first step."""
        self._interval_start = self._t
        self._losses = []
        self._grad_norm = math.nan
        self._update_ratio = None
        self._apply_lr()
        self._meter.start(self._interval_len())
        self._meter.before_step(0, self._params())  # a one-step interval's only step
        self.history.append((self._t, self._rule.action, self._lr))

    def record(self, loss: float | torch.Tensor | None, *, grad_norm: float | None = None
               ) -> None:
        """Adds a training loss (and gradient norm) without counting a step.

        For frameworks that report the loss after the step was counted (the HF callback).
        """
        if loss is not None:
            self._losses.append(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        if grad_norm is not None:
            self._grad_norm = float(grad_norm)

    def observe(self, val_loss: float, val_metric: float, *, grad_norm: float | None = None,
                update_ratio: float | None = None, **_ignored: Any) -> float:
        """Feeds a validation result and makes a decision; returns the action.

        The first call (before any ``step``) describes the untrained model. Later calls
        close the interval since the previous one: call them when ``eval_due`` is True
        for decisions identical to the env's (other times work, on shorter intervals).

        Non-finite training losses are skipped and counted (:attr:`skipped_losses`; one
        ``RuntimeWarning`` per run): they are no divergence, since a step whose loss
        overflowed may never have reached the weights (mixed precision skips it). The
        guard rolls back on a non-finite validation result, a finite training loss above
        ``10 * L0`` (the env's ``divergence_factor``), or a validation loss above its
        best right after an LR increase. Without a rollback, an interval with no finite
        loss or a non-finite validation result holds the LR rule for the next interval
        instead of deciding on meaningless features.

        Args:
            val_loss: Validation loss.
            val_metric: Main validation metric (higher is better, e.g. accuracy).
            grad_norm: Gradient norm at the interval's last step, if not given to ``step``.
            update_ratio: ``||w_t - w_t-1|| / ||w_t-1||`` of the interval's last step, if
                measured by the caller; by default the controller measures it itself
                (one copy of the weights before that step).
            **_ignored: Other metrics (so ``observe(**evaluate(model))`` works).
        """
        val_loss, val_metric = float(val_loss), float(val_metric)
        if not self._started:
            val_loss, val_metric = self._observe_first(val_loss, val_metric)
            prev_val_loss = None
        else:
            val_loss, val_metric, grad_norm, stats, losses = self._interval_means(
                val_loss, val_metric, grad_norm, update_ratio)
            interval = self._kernel.close(losses, lambda: Validation(val_loss, val_metric))
            if interval.skipped:
                self._skip_nonfinite(interval.skipped, len(losses))
            if not (interval.restored or interval.observable):
                self._hold()
                return self._rule.action
            val_loss, val_metric = interval.val.loss, interval.val.metric
            prev_val_loss = self._tracker.prev_val_loss
            self._last_obs = self._kernel.observe(
                interval,
                progress=self._t / self.total_steps,
                lr=self._prev_lr,
                base_lr=self.base_lr(self._t - 1),
                grad_norm=grad_norm,
                d=step_size_estimate(self.optimizer),
                remaining=(self.total_steps - self._t) / self.steps_per_action,
                **stats,
            )
        self._last_val = (val_loss, val_metric)
        self._decide(self._last_obs)
        if self._loggers and distributed.is_main():
            scalars = self.decision_scalars(val_loss, val_metric, prev_val_loss)
            for log in self._loggers:
                log(scalars, self._t)
        return self._rule.action

    def _observe_first(self, val_loss: float, val_metric: float) -> tuple[float, float]:
        """Starts the run on the untrained model's validation result.

        Args:
            val_loss: This rank's validation loss.
            val_metric: This rank's validation metric.

        Returns:
            ``(val_loss, val_metric)``, the means over ranks under torch.distributed.

        Raises:
            ValueError: A non-finite or non-positive loss, or a non-finite metric.
        """
        val_loss, val_metric = distributed.mean_validation(val_loss, val_metric)
        if not (math.isfinite(val_loss) and val_loss > 0 and math.isfinite(val_metric)):
            raise ValueError(
                f"The first observe() needs a finite validation loss > 0 and a finite "
                f"metric (every feature is relative to them), got val_loss={val_loss}, "
                f"val_metric={val_metric}."
            )
        self._last_obs = self._kernel.start(Validation(val_loss, val_metric))
        self._started = True
        return val_loss, val_metric

    def _interval_means(
        self, val_loss: float, val_metric: float, grad_norm: float | None,
        update_ratio: float | None,
    ) -> tuple[float, float, float, dict[str, float], np.ndarray]:
        """Gathers the closing interval's inputs, averaged over ranks.

        Args:
            val_loss: This rank's validation loss.
            val_metric: This rank's validation metric.
            grad_norm: The gradient norm given to ``observe``, if any.
            update_ratio: The update ratio given to ``observe``, if any.

        Returns:
            ``(val_loss, val_metric, grad_norm, stats, losses)``, the means over ranks
            under torch.distributed (identical on every rank), losses as float64.

        Raises:
            RuntimeError: No training step since the previous ``observe``.
        """
        if self._t == self._interval_start:
            raise RuntimeError(
                "observe() again without a training step in between; call step(loss) "
                "after every optimizer step and observe() when eval_due is True."
            )
        if grad_norm is not None:
            self._grad_norm = float(grad_norm)
        if update_ratio is not None:
            self._update_ratio = float(update_ratio)
        stats = self._meter.stats()
        if self._update_ratio is not None:
            stats["update_ratio"] = self._update_ratio
        # Under torch.distributed: the means over ranks, identical on every rank.
        val_loss, val_metric, grad_norm, stats, losses = distributed.mean_interval(
            val_loss, val_metric, self._grad_norm, stats, self._losses,
            self._t - self._interval_start)
        return val_loss, val_metric, grad_norm, stats, np.array(losses, dtype=np.float64)

    def _skip_nonfinite(self, bad: int, total: int) -> None:
        """Counts the interval's non-finite training losses; warns at the run's first."""
        if not self.skipped_losses:  # a resumed run that skipped some has warned already
            warnings.warn(
                f"LRController: {bad} of {total} training losses in the interval ending at "
                f"step {self._t} are not finite; they are skipped (counted in "
                "skipped_losses, with no further warning). Only a non-finite validation "
                "result or a training loss above 10x the initial validation loss rolls "
                "the run back (with the guard); an interval with no finite loss keeps the "
                "LR rule unchanged.",
                RuntimeWarning, stacklevel=3,
            )
        self.skipped_losses += bad

    def _hold(self) -> None:
        """Keeps the multiplier and action for the next interval (no decision)."""
        self._start_interval()

    @property
    def _prev_lr(self) -> float:
        """The LR used by the interval's last step (the env's ``info["lr"]``)."""
        return self._rule.lr_at(self._t - 1)

    def _decide(self, obs: np.ndarray) -> None:
        self._kernel.decide(distributed.rank0_action(self.policy.act(obs)), self._t)
        self._start_interval()

    def add_logger(self, log: Callable[[dict[str, float], int], None]) -> None:
        """Calls ``log(scalars, step)`` at every decision (see :meth:`decision_scalars`).

        Under ``torch.distributed``, on rank 0 only (the decisions are the same on all).

        E.g. ``ctl.add_logger(tensorboard_logger(SummaryWriter(...)))``; the Trainer and
        Lightning faces wire their own loggers.
        """
        self._loggers.append(log)

    def decision_scalars(self, val_loss: float, val_metric: float,
                         prev_val_loss: float | None) -> dict[str, float]:
        """What the latest decision was seen by: the LR, action, reward proxy, features.

        The reward proxy is the env's default reward for the interval just closed,
        ``log(prev_val_loss / val_loss)`` (0 at the first decision: ``None``).
        ``lr_controller/effective_lr`` is the step size the next optimizer step applies
        (:func:`~lr_gym.bases.effective_lrs`: ``d * lr`` under Prodigy or D-Adaptation,
        else the LR) of the first param group, as ``lr_controller/lr`` is; with several
        groups, ``lr_controller/effective_lr/<i>`` adds every group's (0 included).
        """
        prev = prev_val_loss
        proxy = (math.log(prev / val_loss) if prev is not None and prev > 0 and val_loss > 0
                 else 0.0)
        obs = self._last_obs if self._last_obs is not None else []
        eff = effective_lrs(self.optimizer)
        per_group = ({f"lr_controller/effective_lr/{i}": x for i, x in enumerate(eff)}
                     if len(eff) > 1 else {})
        return {"lr_controller/lr": self._lr, "lr_controller/action": self._rule.action,
                "lr_controller/multiplier": self._rule.multiplier * self._rule.scale,
                "lr_controller/effective_lr": eff[0], **per_group,
                "lr_controller/val_loss": val_loss, "lr_controller/val_metric": val_metric,
                "lr_controller/reward_proxy": proxy,
                **{f"lr_controller/features/{name}": float(x)
                   for name, x in zip(self.config.features, obs, strict=False)}}

    # -------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as plain Python data (no numpy, no policy).

        Plain data round-trips through JSON and ``torch.load(weights_only=True)``. It
        names the controller that saved it by content (:mod:`lr_gym.control.state`).
        """
        return _plain({
            "controller": self._name,
            "controller_sha256": self._content_sha256,
            "total_steps": self.total_steps,
            "steps_per_action": self.steps_per_action,
            "t": self._t,
            **self._rule.state_dict(),
            "started": self._started,
            "interval_start": self._interval_start,
            "losses": [float(x) for x in self._losses],
            "skipped_losses": self.skipped_losses,
            "grad_norm": self._grad_norm,
            "tracker": self._tracker.state_dict(),
            "lr0": self.lr0,
            "group_lr0": list(self._group_lr0),
            "lr_min": self.lr_min,
            "lr_max": self.lr_max,
            "last_obs": None if self._last_obs is None else self._last_obs.tolist(),
            "history": [list(h) for h in self.history],
            "last_val": None if self._last_val is None else list(self._last_val),
            "guard_restores": 0 if self._guard is None else self._guard.restores,
        })

    def state_spec(self) -> StateSpec:
        """What a state loaded into this controller must match (see :func:`check_state`)."""
        return StateSpec(
            controller=self._name, sha256=self._content_sha256, total_steps=self.total_steps,
            steps_per_action=self.steps_per_action, lr0=self.lr0,
            group_lr0=tuple(self._group_lr0), lr_min=self._bounds[0], lr_max=self._bounds[1],
            features=self.config.features, short_halflife=self._tracker.short_halflife,
            long_halflife=self._tracker.long_halflife, chance_loss=self._tracker.chance_loss)

    def load_state_dict(self, state: dict[str, Any], *,
                        source: str = "LRController.load_state_dict(state)") -> None:
        """Restores :meth:`state_dict` and sets the optimizer's LR accordingly.

        The state is checked whole first (:func:`~lr_gym.control.state.check_state`):
        its types, ranges and sizes, and that this controller saved it (the same
        controller file content, budget and optimizer LRs). A refusal changes nothing.

        Args:
            state: What :meth:`state_dict` returned.
            source: Where it came from, for the error message (the faces name their file).

        Raises:
            ControllerStateError: The state does not fit; one line with the fix.
        """
        s = check_state(state, self.state_spec(), source)
        self._t, self._started = s["t"], s["started"]
        self._rule.load_state_dict(s)
        self._interval_start = s["interval_start"]
        self._losses = list(s["losses"])
        self.skipped_losses = s["skipped_losses"]
        self._grad_norm = s["grad_norm"]
        self._kernel.tracker = FeatureTracker(
            **{k: s["tracker"][k] for k in TRACKER_CONSTANTS})
        self._tracker.load_state_dict(s["tracker"])
        self._update_ratio = None
        obs = s["last_obs"]
        self._last_obs = None if obs is None else np.asarray(obs, dtype=np.float32)
        self.history = [(t, a, lr) for t, a, lr in s["history"]]
        self.lr_min, self.lr_max = s["lr_min"], s["lr_max"]
        self._rule.lr_min, self._rule.lr_max = self.lr_min, self.lr_max
        last_val = s["last_val"]
        self._last_val = None if last_val is None else (last_val[0], last_val[1])
        if self._guard is not None and self._last_val is not None:
            # The snapshot (model-sized) is not in this state: the guard restarts from the
            # resumed model, taking the last decision's validation result as its best
            # (exact when the checkpoint was saved at a decision).
            self._guard.start(self._last_val[0], info=Validation(*self._last_val))
            self._guard.restores = s["guard_restores"]
        self._apply_lr()
        self._meter.start(self._interval_len())
        self._meter.before_step(self._t - self._interval_start, self._params())


def _check_base(base: str, optimizer: torch.optim.Optimizer) -> None:
    """Refuses an optimizer that is not the one the controller's rule was trained on."""
    if base != "prodigy":
        return
    from prodigyopt import Prodigy

    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper (HF Trainer)
    if not isinstance(inner, Prodigy):
        raise ValueError(
            f"This controller was trained to scale Prodigy's lr (base='prodigy'), but the "
            f"optimizer is {type(inner).__name__}; build it as prodigyopt.Prodigy(params, "
            "lr=1.0) (LRController.optimizer_for(policy, params, YourOptimizer, lr=..., ...) "
            "carries over the options Prodigy has and warns naming those it drops, such as "
            "SGD's momentum), or use a controller trained on the task's own optimizer "
            "(\"lr_gym/task-base\").")


def _check_prodigy_lr(optimizer: torch.optim.Optimizer) -> None:
    """Warns when a Prodigy-base controller drives Prodigy at an lr it was not trained at."""
    from lr_gym.bases import PRODIGY_LR

    lrs = sorted({float(g["initial_lr"]) for g in optimizer.param_groups})
    if lrs != [PRODIGY_LR]:
        warnings.warn(
            f"This controller was trained scaling Prodigy's lr from {PRODIGY_LR:g} "
            f"(base='prodigy'), but this Prodigy's lr is {', '.join(f'{x:g}' for x in lrs)}: "
            f"every LR it sets is that much off what it learned. Build the optimizer with "
            f"LRController.optimizer_for(...), or prodigyopt.Prodigy(params, lr={PRODIGY_LR:g}).",
            UserWarning, stacklevel=3)


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python numbers and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def tensorboard_logger(writer: Any) -> Callable[[dict[str, float], int], None]:
    """A decision logger writing scalars to a TensorBoard ``SummaryWriter``."""
    def log(scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            writer.add_scalar(name, value, step)
    return log
