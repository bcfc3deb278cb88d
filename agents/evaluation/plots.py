"""Figures of an evaluation: learning curves with LR schedules, performance profiles."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation.scoring import LEARNED
from agents.evaluation.stats import performance_profile

_LEARNED_STYLE = {"color": "black", "lw": 2.4, "zorder": 10}
_REPLAY = "replay"


def _style(name: str, i: int) -> dict[str, Any]:
    if name == LEARNED:
        return dict(_LEARNED_STYLE)
    if name == _REPLAY:
        return {"color": "0.45", "lw": 1.3, "ls": "--", "zorder": 5}
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10").colors
    return {"color": colors[i % len(colors)], "lw": 1.0, "alpha": 0.85, "zorder": 2}


def plot_curves(runs: Sequence[Mapping[str, Any]], path: Path, title: str,
                x: str = "steps") -> None:
    """Validation metric and LR against optimizer steps (or epochs), one row per env.

    Lines are the mean over runs; the shaded band is the min-max range over runs. The
    learned controller is the thick black line, drawn on top; its average-LR replay is
    dashed grey. The legend sits below the panels so it hides no curve.

    Args:
        runs: Run records (``EpisodeResult.to_dict()`` and more).
        path: The PNG to write.
        title: The figure's title.
        x: ``"steps"`` (optimizer steps) or ``"epochs"`` on the horizontal axis.
    """
    if x not in ("steps", "epochs"):
        raise ValueError(f"x must be 'steps' or 'epochs', got {x!r}.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env_id"] for r in runs})
    # One colour per controller across every panel.
    index = {c: i for i, c in enumerate(sorted({r["controller"] for r in runs}))}
    height = 3.4 * len(envs) + 0.8
    fig, axes = plt.subplots(len(envs), 2, figsize=(12, height), squeeze=False)
    handles: dict[str, Any] = {}
    for row, env_id in enumerate(envs):
        groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for r in runs:
            if r["env_id"] == env_id:
                groups[r["controller"]].append(r)
        for ctrl, rs in sorted(groups.items()):
            n = min(len(r["steps"]) for r in rs)
            steps = rs[0][x][:n]  # the same for every run of an env
            metric = np.array([r["val_metric"][:n] for r in rs])
            lrs = np.array([r["lrs"][:n] for r in rs])
            style = _style(ctrl, index[ctrl])
            (line,) = axes[row, 0].plot(steps, metric.mean(0), label=ctrl, **style)
            axes[row, 0].fill_between(steps, metric.min(0), metric.max(0), alpha=0.10,
                                      color=style["color"], zorder=style["zorder"] - 1)
            # Geometric mean: LRs live on a log scale.
            axes[row, 1].plot(steps, np.exp(np.log(np.maximum(lrs, 1e-12)).mean(0)), **style)
            handles.setdefault(ctrl, line)
        metric_name = rs[0]["metric"]
        xlabel = "optimizer step" if x == "steps" else "epoch"
        axes[row, 0].set(title=f"{env_id}", xlabel=xlabel,
                         ylabel=f"validation {metric_name}\n(mean, band: min-max over runs)")
        axes[row, 1].set(title=f"{env_id}", xlabel=xlabel,
                         ylabel="learning rate (geometric mean)", yscale="log")
    order = sorted(handles, key=lambda c: (c != LEARNED, c != _REPLAY, c))
    fig.legend([handles[c] for c in order], order, loc="lower center",
               ncol=min(len(order), 6), fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.5 / height, 1, 1 - 0.3 / height))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_profiles(ratios: Mapping[str, Mapping[str, float]], scores: Mapping[str, float],
                  path: Path, title: str, r_max: float = 4.0) -> None:
    """AlgoPerf performance profiles; the legend lists methods by profile score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    taus = np.linspace(1.0, r_max, 301)
    profiles = performance_profile(ratios, taus)
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    ranked = sorted(profiles, key=lambda m: -(scores.get(m) or 0.0))
    for i, method in enumerate(ranked):
        style = _style(method, i)
        ax.step(taus, profiles[method], where="post",
                label=f"{method} ({scores.get(method, 0.0):.3f})", **style)
    ax.set(xlabel="tau = steps to target / fastest method's", ylabel="fraction of envs",
           title=title, ylim=(-0.02, 1.02))
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5),
              title="method (score)", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
