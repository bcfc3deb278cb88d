"""Draws a TensorBoard log of a deployed controller's decisions as one figure.

Usage:
    python examples/deploy_hf_trainer.py --logdir /tmp/hf_run
    python benchmarks/tensorboard_figure.py /tmp/hf_run \
        -o benchmarks/results/deploy/tensorboard.png

Reads every event file under the folder (TensorBoard's own reader) and draws what
TensorBoard's Scalars tab shows for the run: the LR the Trainer logged at every step
over the controller's decisions, the actions, the reward proxy and the features.
It is a drawing of the event files, not a browser screenshot (this machine has no
browser). Writes the PNG and a JSON of the scalars' tags and lengths beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of every event file under ``folder``: ``[(step, value), ...]``."""
    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events)).Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return {tag: sorted(v) for tag, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    data = scalars(args.logdir)
    if "lr_controller/lr" not in data:
        parser.error(f"no lr_controller/* scalars under {args.logdir}: run an example with "
                     "TensorBoard logging first (see the usage above)")
    features = sorted(t for t in data if t.startswith("lr_controller/features/"))
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
    ax = axes[0, 0]
    if "train/learning_rate" in data:
        s, v = zip(*data["train/learning_rate"], strict=True)
        ax.plot(s, v, lw=1, label="train/learning_rate (Trainer's log, every step)")
    s, v = zip(*data["lr_controller/lr"], strict=True)
    ax.plot(s, v, "o", ms=4, label="lr_controller/lr (each decision)")
    ax.set_yscale("log")
    ax.set_title("learning rate")
    ax.legend(fontsize=7)
    for ax, tag in ((axes[0, 1], "lr_controller/action"),
                    (axes[1, 0], "lr_controller/reward_proxy")):
        s, v = zip(*data[tag], strict=True)
        ax.step(s, v, where="post", marker="o", ms=3)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(tag)
    ax = axes[1, 1]
    for tag in features:
        s, v = zip(*data[tag], strict=True)
        ax.plot(s, v, marker=".", lw=1, label=tag.rsplit("/", 1)[1])
    ax.set_title("lr_controller/features/*")
    ax.legend(fontsize=6, ncol=2)
    for ax in axes.flat:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(f"TensorBoard scalars of {args.logdir.name}", fontsize=10)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=90)
    from agents.evaluation.results import write_results

    write_results(args.output.with_suffix(".json"), {tag: len(v) for tag, v in data.items()},
                  None)
    print(f"wrote {args.output} ({len(data)} scalar tags)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
