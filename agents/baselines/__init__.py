"""Hand-made controllers behind the :class:`~agents.baselines.base.Controller` interface.

One idea per module: :mod:`~agents.baselines.base` (the interface and schedule
baselines' base class), :mod:`~.registry` (every baseline by name:
:data:`BASELINES`, :func:`make_baseline`), :mod:`~.gala` and :mod:`~.hypergradient`
(adaptive rules), :mod:`~.optimizers` (LR-free optimizers: Schedule-Free, Prodigy,
D-Adaptation, hypergradient descent) and :mod:`~.open_loop` (a learned controller's
open-loop controls and replays). The registry's names are re-exported here.
"""

from agents.baselines.base import Controller, ScheduleBaseline, action_array
from agents.baselines.gala import GALAStyle
from agents.baselines.open_loop import AvgLRReplay, LearnedSchedule, fixed_decay, mean_interval_lrs
from agents.baselines.optimizers import (
    LR_FREE_LR,
    LR_FREE_SPACE,
    SCHEDULEFREE_ADAMW_MULTIPLE,
    SCHEDULEFREE_SGD_MULTIPLE,
    DAdaptationBaseline,
    HypergradientBaseline,
    ProdigyBaseline,
    ScheduleFreeBaseline,
)
from agents.baselines.registry import (
    BASELINES,
    HF_WARMUP_FRAC,
    AlignmentRule,
    PlateauBaseline,
    cosine_decay,
    make_baseline,
    onecycle,
    static_guard,
    static_lr,
    step_decay,
    warmup_cosine,
    warmup_linear,
)

__all__ = [
    "BASELINES",
    "HF_WARMUP_FRAC",
    "LR_FREE_LR",
    "LR_FREE_SPACE",
    "SCHEDULEFREE_ADAMW_MULTIPLE",
    "SCHEDULEFREE_SGD_MULTIPLE",
    "AlignmentRule",
    "AvgLRReplay",
    "Controller",
    "DAdaptationBaseline",
    "GALAStyle",
    "HypergradientBaseline",
    "LearnedSchedule",
    "PlateauBaseline",
    "ProdigyBaseline",
    "ScheduleBaseline",
    "ScheduleFreeBaseline",
    "action_array",
    "cosine_decay",
    "fixed_decay",
    "make_baseline",
    "mean_interval_lrs",
    "onecycle",
    "static_guard",
    "static_lr",
    "step_decay",
    "warmup_cosine",
    "warmup_linear",
]
