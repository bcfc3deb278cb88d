"""`LRControlEnv`: one training run of a primary model as a Gymnasium episode."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from lr_gym import lr_rule
from lr_gym.bases import base_task, step_size_estimate
from lr_gym.config import EnvConfig
from lr_gym.events import Event, apply_event, draw_event
from lr_gym.features import OBS_BOUND, FeatureTracker
from lr_gym.grad_stats import IntervalMeter
from lr_gym.guard import Guard
from lr_gym.kernel import DecisionKernel, Validation
from lr_gym.reference import CACHE as REFERENCE_CACHE
from lr_gym.reference import ReferenceRun, reference_key, run_reference
from lr_gym.reproducibility import pinned
from lr_gym.tasks.base import Task, TaskData, data_chance_loss, iterate_batches, move_to


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when available; anything else goes to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:1' or 'auto'."
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was requested but CUDA is not available; "
            "use device='cpu' or device='auto'."
        )
    return dev


def _check_action(action: Any) -> None:
    """Refuses an action that is not one number, naming what it got."""
    if np.asarray(action, dtype=object).size != 1:
        raise ValueError(
            f"action must hold exactly one number (action space Box(-1, 1, (1,))), got "
            f"shape {np.shape(action)}."
        )
    try:
        numeric = np.asarray(action).dtype.kind in "fiu"
    except (TypeError, ValueError):
        numeric = False
    if not numeric:
        raise ValueError(
            f"action must be a number (action space Box(-1, 1, (1,))), got {action!r} "
            f"of type {type(action).__name__}; pass e.g. np.array([0.5], np.float32)."
        )


class LRControlEnv(gym.Env[np.ndarray, np.ndarray]):
    """Learning-rate control of one training run of a primary model.

    ## Description

    An episode is one training run of the task's model with a fixed budget of ``T``
    optimizer steps, cut into control intervals of ``K = steps_per_action`` steps.
    Each ``step`` sets the learning rate from the action, trains the model for one
    interval, measures it on the task's fixed validation subset and returns scale-free
    features of the run. The controller's job is to make validation loss fall fast
    and far without diverging.

    ## Action Space

    ``Box(-1, 1, (1,), float32)``. The action ``a`` maps to a multiplier
    ``m = max_factor ** a`` (log scale, bounded to ``[1/max_factor, max_factor]``).
    In ``mode="recursive"`` (default, with ``schedule="constant"`` and
    ``max_factor=2``) the multiplier accumulates, ``M <- M * m`` and
    ``lr = lr0 * schedule(t) * M``: the design's LR multiplier. In ``mode="anchored"``
    the LR at optimizer step ``t`` is ``lr0 * schedule(t) * m``, a bounded residual
    around the base schedule. The LR is always clamped to ``[lr_min, lr_max]``
    (default ``[lr0 / 1000, 30 lr0]``: ``lr_min_factor``, ``lr_max_factor``; v2's
    ``[lr0 / 100, 100 lr0]``). Out-of-range actions are clipped; NaN counts
    as 0 (keep the LR); an action that is not one number (shape ``(3,)``, ``None``, a
    string, a bool) raises ``ValueError`` and changes nothing. With ``base="prodigy"``
    the rule drives Prodigy at ``lr0 = 1.0`` in place of the task's optimizer
    (:mod:`lr_gym.bases`): the multiplier scales Prodigy's ``lr``.

    ## Observation Space

    ``Box(-10, 10, (n,), float32)`` with one entry per name in ``features`` (default
    the 14 of :data:`lr_gym.features.DEFAULT_FEATURES`, in this order), every entry
    finite and clipped (``env.unwrapped.feature_names`` lists them):

    | idx | name | meaning |
    |-----|------|---------|
    | 0 | progress | optimizer steps done / T |
    | 1 | log_lr_ratio | log(lr / lr0) |
    | 2 | log_train_loss | log(train-loss EMA / L0), L0 = initial validation loss |
    | 3 | loss_trend | log(short EMA / long EMA) of the training loss (< 0: improving) |
    | 4 | loss_cv | std / mean of the interval's step losses |
    | 5 | log_val_loss | log(validation loss / L0) |
    | 6 | val_metric | main validation metric (e.g. accuracy in [0, 1]) |
    | 7 | log_grad_norm | log(gradient norm / first measured gradient norm) |
    | 8 | grad_norm_change | log(gradient norm / previous interval's) |
    | 9 | prev_action | the last action, in [-1, 1] |
    | 10 | gen_gap | log(validation loss / train-loss EMA) |
    | 11 | val_trend | log(validation loss / previous interval's) |
    | 12 | val_vs_best | log(validation loss / lowest so far) |
    | 13 | update_ratio | log(‖Δw‖ / ‖w‖) of the interval's last optimizer step |

    ``log_multiplier`` (log(lr / (lr0 * schedule(t))), v0's last entry) can still be
    asked for by name; it duplicates ``log_lr_ratio`` or ``prev_action``.

    The step-size features (:data:`lr_gym.features.STEP_FEATURES`, measured by
    :mod:`lr_gym.grad_stats` on the last 8 optimizer steps of each interval), each an
    EMA over decisions at two speeds (``_fast``: half-life 1, ``_slow``: half-life 4),
    squashed by ``tanh``:

    | name | signal |
    |------|--------|
    | grad_alignment_* | mean cosine of consecutive minibatch gradients (hypergradient, GALA) |
    | update_alignment_* | cosine of -gradient with the optimizer's actual update (LHOPT) |
    | log_noise_scale_* | log(B_noise / B), the simple gradient noise scale over the batch |
    | loss_ratio_* | log(mean train loss / the previous interval's) |
    | log_update_ratio_* | log(‖Δw‖ / ‖w‖) of the interval's last step |

    :data:`lr_gym.features.V3_FEATURES` adds to v2's what tells apart regimes whose best
    schedule differs: ``loss_vs_chance`` (the start against the task's
    :attr:`~lr_gym.tasks.Task.chance_loss`: fine-tuning starts far below it),
    ``gen_gap_trend``, ``log_d_growth`` and ``log_d_since_start`` (the base optimizer's
    own step-size estimate, Prodigy's ``d``, and its growth) and ``log_remaining`` (the
    decisions left).

    :data:`lr_gym.features.V2_FEATURES` is v1's observation without the level features
    that name a task (loss, metric and gradient-norm levels), plus these; the learnability
    check before controller v2's training kept v1's observation as the v2 ids' default
    (``benchmarks/results/learnability``).

    ## Rewards

    Dense, by ``reward``: ``"val_loss"`` (default) ``log(L_val,t-1 / L_val,t)``, whose
    episode sum telescopes to ``log(L0 / L_T)``; ``"val_loss_area"`` (speed-aware)
    ``(K / T) log(L0 / L_val,t)``, whose sum is the area under the log-loss curve, so
    reaching a low loss early pays; ``"train_loss"`` the same as ``"val_loss"`` on the
    train-loss EMA; ``"metric"`` the validation-metric gain; ``"terminal_metric"`` the
    final validation metric. All scaled by ``reward_scale``. Divergence gives
    ``-divergence_penalty``. Rewards never use the test split.

    ``"paired"`` (v2): against a reference run of the same task and seed under a fixed
    rule (``reference``: static at lr0 by default; :mod:`lr_gym.reference`, cached), the
    change of ``R_t = clip(log(L_ref(t) / L(t)), +-paired_clip)``, so the episode sums
    to ``clip(log(L_ref(T) / L(T)))``: what the actions changed, not how far the task's
    loss can fall. A diverged run (agent or reference) counts as the untrained model
    ``L0``; the agent's divergence costs ``divergence_penalty`` only where the
    reference survived, and surviving the budget where the reference diverged earns it.
    Every reward pays ``action_cost * a**2``.

    ## Starting State

    ``reset(seed=s)`` seeds the model initialisation, the data order and the training
    RNG (dropout) from ``s``: the same seed and actions give the same trajectory on
    CPU. The first observation describes the untrained model (progress 0). Its
    validation loss must be finite and > 0 and the main metric finite (``ValueError``
    otherwise: every feature and reward is relative to them).

    ## Episode End

    * Termination: the budget of ``T`` optimizer steps is spent (the budget is part
      of the MDP: ``progress`` is observed). If the task has a test split and
      ``eval_test`` is set, ``info["test"]`` holds its metrics.
    * Termination: the run diverged (a non-finite training loss, or one above
      ``divergence_factor * L0``). ``info["diverged"]`` is True.
    * Truncation: never by the env itself; only an external time limit
      (``max_episode_steps``) truncates.

    With ``guard=True`` (:mod:`lr_gym.guard`) a divergence, or a validation loss above
    ``e^0.1`` times its best right after an LR increase, rolls the run back to its best
    state instead, halves the LR for good and blocks increases for two decisions;
    ``info["guard_restores"]`` counts them. With ``event_prob > 0`` an episode may have
    one event (:mod:`lr_gym.events`), drawn from its seed; ``info["event"]`` describes it.

    ## Arguments

    ```python
    gym.make("lr_gym/Digits-MLP-v1", mode="recursive", schedule="constant", max_factor=2.0,
             reward="val_loss", device="cpu", render_mode="ansi")
    ```

    ``task`` is a :class:`~lr_gym.tasks.Task` or a registered task name;
    ``task_kwargs`` go to the task's factory (e.g. ``{"data_dir": "/data"}``); every
    other keyword is a field of :class:`~lr_gym.config.EnvConfig` (or pass ``config=``).

    ``info`` holds ``lr``, ``train_loss``, ``val_loss``, ``val_metric``, every
    validation metric as ``val_<name>``, ``step`` (optimizer steps), ``epoch``,
    ``task``, ``diverged``, and the LR rule's last decision: ``action`` (as applied:
    clipped, NaN as 0) and ``multiplier`` (``M``, times the guard's back-off).

    ## Version History

    * v2 (``TrainFamilies`` and ``DevFamilies`` only: task distribution v2 for controller
      v2): lr0 x0.5-x2 in 40% of the tasks and x0.01-x100 in 60%, an event in 30% of the
      episodes, each task and seed run 4 times; the v2 rule (a multiplier around static
      reaching x0.01-x100, ``max_factor`` 2), the paired reward and an action cost of
      0.01, with v1's observation (:data:`lr_gym.config.V2_ENV_KWARGS`).
      Every v1 id and its episodes are unchanged; the new options (``reward="paired"``,
      ``guard``, ``event_prob``, the step-size features, ``lr_min_factor``,
      ``lr_max_factor``, ``torch_threads``, ``base="prodigy"``) default to v1's behaviour.

    * v4 (``SQuADv2-MiniLM-CPU`` only): lr0 3e-4 instead of 1e-4, chosen on validation
      among 1e-4, 3e-4 and 5e-4 (the best mean over two seeds, by less than the spread
      between seeds), and its 400 test questions are a fixed random subset of the test
      articles instead of the first 400 (a few articles with 71% unanswerable questions).
    * v3 (``SQuADv2-MiniLM-CPU`` only) and v2 (``IMDB-MiniLM-CPU`` only): both MiniLM
      CPU presets are resized to their measured step cost, about 4-5 minutes per
      episode on 2 cores (the v1 IMDB episode took 25): shorter budgets, batch 16,
      smaller validation and test sets, 128-token SQuAD windows.
    * v2 (``SQuADv2-MiniLM-CPU`` only): its task keeps 10% of the answer-less training
      windows (``null_window_keep=0.1``), so the budget learns answer spans, and tunes
      the no-answer threshold on validation (``null_score_diff_threshold="tuned"``).
    * v1: reaching the budget terminates (v0 truncated); observations drop
      ``log_multiplier`` and add ``gen_gap``, ``val_trend``, ``val_vs_best`` and
      ``update_ratio``; ``features`` and the ``"val_loss_area"`` reward are options.
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        task: Task | str,
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        task_kwargs: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        from lr_gym.registration import get_task

        self.config = (config or EnvConfig()).replace(**overrides)
        self.task: Task = base_task(
            get_task(task, **(task_kwargs or {})) if isinstance(task, str) else task,
            self.config)
        # Other modes (SB3's make_vec_env asks for "rgb_array") render nothing; gym.make
        # already warns about them, so they must not be fatal.
        self.render_mode = render_mode
        c = self.config
        # `is None`, not `or`: an explicit 0 must be refused (EnvConfig does), never
        # silently replaced by the task's value.
        self.total_steps = self.task.total_steps if c.total_steps is None else c.total_steps
        self.steps_per_action = (
            self.task.steps_per_action if c.steps_per_action is None else c.steps_per_action
        )
        if self.steps_per_action > self.total_steps:
            raise ValueError(
                f"steps_per_action ({self.steps_per_action}) exceeds total_steps "
                f"({self.total_steps}); lower steps_per_action."
            )
        self.lr0 = self.task.lr
        self.lr_min, self.lr_max = lr_rule.lr_bounds(self.lr0, c.lr_min, c.lr_max,
                                                     c.lr_min_factor, c.lr_max_factor)
        if not self.lr_min < self.lr_max:
            raise ValueError(
                f"lr_min ({self.lr_min:g}) must be below lr_max ({self.lr_max:g}) for task "
                f"{self.task.name!r} (lr0={self.lr0:g}; unset bounds default to "
                f"lr0*{c.lr_min_factor:g} and lr0*{c.lr_max_factor:g})."
            )
        self.device = resolve_device(self.config.device)
        self._lr_state = self._new_lr_state([self.lr0])

        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(
            -OBS_BOUND, OBS_BOUND, shape=(len(c.features),), dtype=np.float32
        )
        self.feature_names = c.features
        self._meter = IntervalMeter(c.features)

        self._data: TaskData | None = None
        self._model: torch.nn.Module | None = None
        self._guard: Guard | None = None
        self._event: Event | None = None
        self._done = True
        self._info: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    @property
    def data(self) -> TaskData:
        """The task's splits, loaded on first use (never at construction)."""
        if self._data is None:
            with self.pinned():  # generated data may run a model (e.g. a teacher's labels)
                self._data = self.task.data_fn()
        return self._data

    def pinned(self) -> contextlib.AbstractContextManager[None]:
        """The episode's torch settings (``torch_threads``, deterministic CPU kernels).

        ``reset``, ``step`` and data loading run under it, so the episode's arithmetic
        does not depend on the calling process's settings (:mod:`lr_gym.reproducibility`).
        """
        return pinned(self.config.torch_threads, deterministic=self.device.type == "cpu")

    @property
    def model(self) -> torch.nn.Module:
        """The primary model of the current episode."""
        if self._model is None:
            raise RuntimeError("No episode is running: call reset() first.")
        return self._model

    def base_lr(self, step: int) -> float:
        """``lr0 * schedule(step)`` of the configured base schedule."""
        return self._lr_state.base_lr(step)

    def _new_lr_state(self, group_lr0: list[float]) -> lr_rule.LRState:
        return lr_rule.LRState.from_config(self.config, lr0=self.lr0,
                                           total_steps=self.total_steps, group_lr0=group_lr0,
                                           lr_min=self.lr_min, lr_max=self.lr_max)

    def _next_batch(self) -> Any:
        try:
            return next(self._batches)
        except StopIteration:
            self._epoch += 1
            self._batches = self._epoch_iter()
            return next(self._batches)

    def _epoch_iter(self) -> Iterator[Any]:
        return iterate_batches(
            self._train_set,
            self._batch_size,
            generator=self._data_gen,
            drop_last=len(self._train_set) > self._batch_size,
            collate_fn=self.task.collate_fn,
        )

    def _apply_event(self) -> None:
        """The episode's event happens now: new training data or batch size, new epoch."""
        self._train_set, self._batch_size, applied = apply_event(
            self._event, self._train_set, self._batch_size)
        self._event_applied = applied
        if applied:
            self._batches = self._epoch_iter()

    def _validation(self, split: str) -> Validation:
        """:meth:`_evaluate` as the decision kernel reads it (the metrics dict its info)."""
        val = self._evaluate(split)
        return Validation(val["loss"], val[self.task.metric], val)

    def _evaluate(self, split: str) -> dict[str, float]:
        dataset = self.data.val if split == "val" else self.data.test
        model = self.model
        model.eval()
        # Schedule-Free optimizers evaluate at averaged weights: they need eval()/train().
        opt_mode = getattr(self._optimizer, "eval", None), getattr(self._optimizer, "train", None)
        if callable(opt_mode[0]):
            opt_mode[0]()
        with torch.no_grad():
            metrics = self.task.eval_fn(model, dataset, self.task, self.device)
        if callable(opt_mode[1]):
            opt_mode[1]()
        model.train()
        if "loss" not in metrics or self.task.metric not in metrics:
            raise KeyError(
                f"Task {self.task.name!r}: eval_fn must return 'loss' and "
                f"{self.task.metric!r}, got {sorted(metrics)}."
            )
        out = {k: float(v) for k, v in metrics.items()}
        if (split == "val" and math.isfinite(out["loss"])
                and not math.isfinite(out[self.task.metric])):
            # A NaN metric would become a NaN reward (metric rewards) and poison PPO; with
            # a non-finite loss the run diverged, which step() reports as such.
            raise ValueError(
                f"Task {self.task.name!r}: eval_fn returned {self.task.metric}="
                f"{out[self.task.metric]} on the validation split; the main metric must be "
                "a finite number."
            )
        return out

    def _swap_rng(self) -> None:
        """Swaps the env's private torch RNG state with the global one.

        Training randomness (dropout) then depends only on the episode seed, not on
        what else in the process (a PPO policy, another env) drew numbers in between.
        """
        state = torch.get_rng_state()
        torch.set_rng_state(self._rng_state)
        self._rng_state = state

    # ---------------------------------------------------------------------- API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts a fresh training run; see the class docstring."""
        super().reset(seed=seed)
        # One draw from the episode RNG fixes everything torch does in this episode.
        return self.start(int(self.np_random.integers(0, 2**62)))

    def start(self, torch_seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts the run that :meth:`reset` starts when it draws ``torch_seed``.

        The whole episode (initialisation, data order, dropout, event) follows from
        ``torch_seed``: a reference run replays an episode's seed with other actions.
        """
        with self.pinned():
            return self._start(torch_seed)

    def _start(self, torch_seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        gen = torch.Generator().manual_seed(torch_seed)
        model_seed, data_seed, train_seed = (
            int(x) for x in torch.randint(0, 2**62, (3,), generator=gen)
        )
        self._torch_seed = torch_seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(model_seed)
            self._model = self.task.model_fn().to(self.device)
            self._rng_state = torch.Generator().manual_seed(train_seed).get_state()
        self._model.train()
        self._optimizer = self.task.build_optimizer(self._model)
        if callable(getattr(self._optimizer, "train", None)):
            self._optimizer.train()  # Schedule-Free optimizers start in train mode
        self._lr_state = self._new_lr_state([g["lr"] for g in self._optimizer.param_groups])
        # The optimizer's parameters, as the deployed LRController sees them.
        self._params = [p for g in self._optimizer.param_groups for p in g["params"]]
        self._data_gen = torch.Generator().manual_seed(data_seed)
        # Drawn from its own stream, so v1 episodes (no events) keep their numbers.
        self._event = draw_event(np.random.default_rng([torch_seed, 1]),
                                 self.config.event_prob, self.total_steps)
        self._event_applied = False
        self._train_set, self._batch_size = self.data.train, self.task.batch_size
        self._epoch = 0
        self._batches = self._epoch_iter()
        self._t = 0
        self._decisions = 0
        self._train_loss = math.nan

        val = self._evaluate("val")
        if not (math.isfinite(val["loss"]) and val["loss"] > 0):
            # Every feature and reward is relative to this loss: a bad one would only
            # surface later, misreported as a divergence.
            raise ValueError(
                f"Task {self.task.name!r}: eval_fn returned loss={val['loss']} for the "
                "untrained model; the initial validation loss must be finite and > 0."
            )
        self._tracker = FeatureTracker(self.lr0, features=self.config.features,
                                       chance_loss=self._chance_loss())
        self._val = val
        self._guard = Guard(self._optimizer, self._model) if self.config.guard else None
        self._kernel = DecisionKernel(self._tracker, self._lr_state, self._meter, self._guard,
                                      divergence_factor=self.config.divergence_factor,
                                      skip_nonfinite=False)
        obs = self._kernel.start(Validation(val["loss"], val[self.task.metric], val))
        self._reference = self._paired_return = None
        if self.config.reward == "paired":
            self._reference = self._reference_run()
            self._paired_return = 0.0
        if self.config.optimizer_sets_lr:
            self._lr = float(self._optimizer.param_groups[0]["lr"])
        else:
            self._lr = self._lr_state.lr_at(0)
        self._done = False
        self._info = self._make_info(diverged=False)
        return obs, dict(self._info)

    def _chance_loss(self) -> float | None:
        """The task's chance loss, or one estimated from its training targets (once)."""
        if self.task.chance_loss is not None or "loss_vs_chance" not in self.config.features:
            return self.task.chance_loss
        if not hasattr(self, "_data_chance"):
            self._data_chance = data_chance_loss(self.data.train)
        return self._data_chance

    def _reference_run(self) -> ReferenceRun:
        """The reference of this episode's seed (cached: :mod:`lr_gym.reference`)."""
        key = reference_key(self.task, self.config, self._torch_seed, self.total_steps,
                            self.steps_per_action, self.device.type)
        def make_env(config: EnvConfig) -> LRControlEnv:
            env = LRControlEnv(self.task, config)
            # The splits this env loaded: loading them again cost the reference as much
            # as its training (events copy the training set, never change it).
            env._data = self.data
            return env

        return REFERENCE_CACHE.get(key, lambda: run_reference(
            make_env, self._reference_config(), self._torch_seed))

    def _reference_config(self) -> EnvConfig:
        # The budget this env resolved (task or config) is the reference's too.
        return self.config.replace(total_steps=self.total_steps,
                                   steps_per_action=self.steps_per_action)

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Trains one control interval at the LR chosen by ``action``."""
        with self.pinned():
            return self._step(action)

    def _step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("The episode has ended (or never started): call reset() first.")
        _check_action(action)
        c, task = self.config, self.task
        a = self._kernel.decide(action, self._t)
        n = min(self.steps_per_action, self.total_steps - self._t)
        step_losses, grad_norm = self._train(n)
        lr, opt, meter = self._lr, self._optimizer, self._meter
        prev_val, prev_train = self._val, self._tracker.train_loss
        self._decisions += 1
        interval = self._kernel.close(step_losses, lambda: self._validation("val"))
        if interval.diverged:
            self._done = True
            self._train_loss = float(interval.losses[-1])
            self._info = self._make_info(diverged=True)
            obs = self._kernel.observe(
                interval, last=Validation(self._val["loss"], self._val[task.metric]),
                progress=self._t / self.total_steps, lr=lr, base_lr=self.base_lr(self._t),
                grad_norm=float("nan"))
            return obs, self._divergence_reward(a), True, False, dict(self._info)

        self._val = interval.val.info
        obs = self._kernel.observe(
            interval,
            progress=self._t / self.total_steps,
            lr=lr,
            base_lr=self.base_lr(self._t - 1),
            grad_norm=float(grad_norm),
            d=step_size_estimate(opt),
            remaining=(self.total_steps - self._t) / self.steps_per_action,
            **meter.stats(),
        )
        self._train_loss = self._tracker.train_loss
        # v1: the budget is part of the MDP (progress is observed), so its end is a
        # termination: PPO must not bootstrap a value past it.
        end = self._t >= self.total_steps
        reward = self._reward(prev_val, prev_train, end, n) - c.action_cost * a * a
        self._done = end
        self._info = self._make_info(diverged=False)
        if end and c.eval_test and self.data.test is not None:
            self._info["test"] = self._evaluate("test")
        return obs, reward, end, False, dict(self._info)

    def _train(self, n: int) -> tuple[np.ndarray, torch.Tensor]:
        """Trains ``n`` optimizer steps at the LR rule's LRs (the event, if due, applied).

        Returns:
            The steps' training losses, and the gradient norm of the last step (or of
            each clipped step).
        """
        model, opt, task = self.model, self._optimizer, self.task
        losses: list[torch.Tensor] = []
        on_cpu = self.device.type == "cpu"  # CPU data needs no copy
        grad_norm = torch.zeros(())
        meter, params = self._meter, self._params
        meter.start(n)
        set_lr, rule = not self.config.optimizer_sets_lr, self._lr_state
        self._swap_rng()
        try:
            for i in range(n):
                if self._event is not None and self._t == self._event.step:
                    self._apply_event()
                if set_lr:
                    lr = rule.apply(opt, self._t)
                batch = self._next_batch()
                if not on_cpu:
                    batch = move_to(batch, self.device)
                opt.zero_grad(set_to_none=True)
                loss = task.loss_fn(model, batch)
                loss.backward()
                meter.after_backward(i, params)
                if task.grad_clip is not None:
                    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), task.grad_clip)
                elif i == n - 1:
                    norm = lr_rule.grad_norm(model.parameters())
                    if norm is not None:
                        grad_norm = norm
                meter.before_step(i, params)
                opt.step()
                meter.after_step(params)
                self._t += 1
                losses.append(loss.detach())
        finally:
            self._swap_rng()
        if not set_lr:  # the LR the optimizer used in its last step
            lr = float(opt.param_groups[0]["lr"])
        self._lr = lr
        # One host sync per interval (not per step) keeps GPU steps asynchronous.
        return torch.stack(losses).float().cpu().numpy(), grad_norm

    def _divergence_reward(self, a: float) -> float:
        """The reward of a step whose run diverged (the episode ends)."""
        c = self.config
        if self._reference is None:
            return -float(c.divergence_penalty) - c.action_cost * a * a
        # A diverged run counts as the untrained model; the penalty applies only where
        # the reference survived the budget.
        initial = self._tracker.initial_loss
        r = self._paired_step(initial)
        penalty = 0.0 if self._reference.diverged else float(c.divergence_penalty)
        return float(c.reward_scale * r) - penalty - c.action_cost * a * a

    def _paired_step(self, val_loss: float) -> float:
        """The change of the clipped ``log(L_ref / L)`` over this decision."""
        clip = self.config.paired_clip
        ref = self._reference.loss_at(self._decisions, self._tracker.initial_loss)
        ret = math.log(max(ref, 1e-12) / max(val_loss, 1e-12))
        ret = min(max(ret, -clip), clip)
        step, self._paired_return = ret - self._paired_return, ret
        return step

    def _reward(self, prev_val: dict[str, float], prev_train: float, end: bool,
                n_steps: int) -> float:
        c, metric = self.config, self.task.metric
        if c.reward == "val_loss":
            r = math.log(max(prev_val["loss"], 1e-12) / max(self._val["loss"], 1e-12))
        elif c.reward == "val_loss_area":
            r = n_steps / self.total_steps * math.log(
                self._tracker.initial_loss / max(self._val["loss"], 1e-12))
        elif c.reward == "train_loss":
            r = math.log(max(prev_train, 1e-12) / max(self._tracker.train_loss, 1e-12))
        elif c.reward == "metric":
            r = self._val[metric] - prev_val[metric]
        elif c.reward == "paired":
            r = self._paired_step(self._val["loss"])
            if end and self._reference.diverged:  # survived where the reference did not
                return float(c.reward_scale * r + c.divergence_penalty)
        else:  # terminal_metric
            r = self._val[metric] if end else 0.0
        return float(c.reward_scale * r)

    def _make_info(self, *, diverged: bool) -> dict[str, Any]:
        info: dict[str, Any] = {
            "task": self.task.name,
            "step": self._t,
            "epoch": self._t * self.task.batch_size / max(len(self.data.train), 1),
            "lr": self._lr,
            "train_loss": self._train_loss,
            "val_loss": self._val["loss"],
            "val_metric": self._val[self.task.metric],
            "metric": self.task.metric,
            "diverged": diverged,
            # The rule's last decision: the action it applied (clipped, NaN as 0, capped
            # after a rollback) and the multiplier M it left (with the guard's back-off).
            "action": self._lr_state.action,
            "multiplier": self._lr_state.multiplier * self._lr_state.scale,
        }
        if self._guard is not None:
            info["guard_restores"] = self._guard.restores
        if self._event is not None:
            info["event"] = {"kind": self._event.kind, "step": self._event.step,
                             "applied": self._event_applied}
        info.update({f"val_{k}": v for k, v in self._val.items()})
        return info

    def render(self) -> str | None:
        """One-line status (``render_mode="ansi"``)."""
        if self.render_mode != "ansi":
            return None
        i = self._info
        if not i:
            return f"{self.task.name}: not started"
        return (
            f"{i['task']} step {i['step']}/{self.total_steps} lr={i['lr']:.3g} "
            f"train_loss={i['train_loss']:.4f} val_loss={i['val_loss']:.4f} "
            f"{i['metric']}={i['val_metric']:.4f}" + (" DIVERGED" if i["diverged"] else "")
        )

    def close(self) -> None:
        """Frees the model and optimizer."""
        self._model = None
        self._optimizer = None  # type: ignore[assignment]
        self._done = True
