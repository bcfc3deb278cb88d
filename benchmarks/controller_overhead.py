"""Cost of the deployed controller on CPU: one decision, and one ``step(loss)``.

A decision is ``observe()``: the feature update (``FeatureTracker.update`` over the
interval's losses), the normalisation and the policy MLP forward, and setting the LR.
``step(loss)`` runs every optimizer step in between (with a float loss and with a
tensor loss; the interval's last step also measures the gradient norm). The guard is on,
as deployed by default, and every decision here is a new best validation loss, so each
one also copies the model and optimizer state (its worst case); ``decision_no_guard``
is the same decision with ``guard=False``.

The snapshot section prices the guard's copy on its own, for MLPs of about 1M to 100M
parameters with Adam's state (12 bytes per parameter held): the time of a snapshot and
of a restore (median over ``--snapshot-repeats``) and the bytes held, for the guard as it
was (``copy.deepcopy`` of the state dicts, on the tensors' device) and as it is (CPU
buffers refilled in place; the first snapshot allocates them).

The controller is the shipped ``lr_gym/default`` (its features, on Prodigy) unless another
is given; ``policy_act`` and ``feature_update`` time a decision's two biggest parts alone.

Usage: python benchmarks/controller_overhead.py [AGENT] [--repeats N]
Writes benchmarks/results/controller_overhead.json and .md.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch

from agents.evaluation.results import (
    add_benchmark_arguments,
    meta,
    parse_benchmark_args,
    write_results,
)
from lr_gym.control import ControllerPolicy, LRController, load_controller_file

K = 15  # steps per decision, as in the embedded tasks


def _optimizer(policy: ControllerPolicy, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer the controller drives: Prodigy for an LR-free base, else SGD."""
    if policy.env_config.base == "prodigy":
        from prodigyopt import Prodigy

        return Prodigy(model.parameters(), lr=1.0)
    return torch.optim.SGD(model.parameters(), lr=0.05)


def decision_parts(policy: ControllerPolicy, repeats: int) -> dict[str, dict[str, float]]:
    """The two biggest parts of a decision on their own: the policy MLP and the features.

    ``policy_act`` is the normalisation and the MLP forward in torch (a handful of torch
    ops of a few microseconds each, whatever the network's size); ``feature_update`` is
    :meth:`~lr_gym.features.FeatureTracker.update` over one interval's K losses.
    """
    from lr_gym.features import FeatureTracker

    features = policy.env_config.features
    obs = torch.linspace(-1, 1, len(features)).numpy()
    tracker = FeatureTracker(0.1, features=features, chance_loss=2.3)
    tracker.reset(2.3, 0.1)
    losses = torch.linspace(1.0, 0.5, K, dtype=torch.float64).numpy()
    act, update = [], []
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        policy.act(obs)
        act.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        tracker.update(progress=i / repeats, lr=0.1, base_lr=0.1, step_losses=losses,
                       val_loss=1.0 / (i + 2), val_metric=0.5, grad_norm=1.0, action=0.1,
                       d=1e-3, remaining=10.0, update_ratio=1e-3)
        update.append(time.perf_counter_ns() - t0)
    return {"policy_act": _stats(act), "feature_update": _stats(update)}


def measure(policy: ControllerPolicy, repeats: int, guard: bool = True
            ) -> dict[str, dict[str, float]]:
    """Median/mean microseconds per decision and per step (several timed rounds)."""
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = _optimizer(policy, model)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    total = repeats * K + 1
    ctl = LRController(opt, policy, total_steps=total, steps_per_action=K, guard=guard,
                       model=model)
    ctl.observe(val_loss=2.3, val_metric=0.1)
    tensor_loss = torch.tensor(0.5)
    decide, step_f, step_t = [], [], []
    for i in range(repeats):
        for j in range(K):
            loss = 1.0 / (i * K + j + 2)
            if j % 2:
                t0 = time.perf_counter_ns()
                ctl.step(loss)
                step_f.append(time.perf_counter_ns() - t0)
            else:
                t0 = time.perf_counter_ns()
                ctl.step(tensor_loss)
                step_t.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        ctl.observe(val_loss=1.0 / (i + 2), val_metric=0.5)
        decide.append(time.perf_counter_ns() - t0)

    return {"decision": _stats(decide), "step_float_loss": _stats(step_f),
            "step_tensor_loss": _stats(step_t)}


def _stats(ns: list[int]) -> dict[str, float]:
    us = [x / 1e3 for x in ns]
    return {"median_us": statistics.median(us), "mean_us": statistics.fmean(us),
            "p90_us": sorted(us)[int(0.9 * len(us))], "n": len(us)}


def _cnn_steps(n: int) -> list[int]:
    """Nanoseconds of plain optimizer steps of the Digits-CNN (batch 64): the yardstick."""
    from lr_gym.tasks.grids.embedded import digits_cnn

    model = digits_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        out.append(time.perf_counter_ns() - t0)
    return out


SNAPSHOT_SIZES = {"1M": 10**6, "10M": 10**7, "30M": 3 * 10**7, "100M": 10**8}
"""Parameter counts of the snapshot section's MLPs (four square layers)."""


def _mlp_with_adam(n_params: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """An MLP of about ``n_params`` parameters and an Adam that has taken a step."""
    width = round(math.sqrt(n_params / 4))
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[m for _ in range(4)
                                  for m in (torch.nn.Linear(width, width), torch.nn.ReLU())])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # creates the moments, as in a run
    for p in model.parameters():
        p.grad = None
    return model, opt


def _deepcopy_snapshot(model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple:
    """The guard's snapshot before it moved to CPU buffers."""
    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())


def _deepcopy_restore(snapshot: tuple, model: torch.nn.Module,
                      opt: torch.optim.Optimizer) -> None:
    model.load_state_dict(snapshot[0])
    opt.load_state_dict(copy.deepcopy(snapshot[1]))


def _nbytes(obj: object) -> int:
    """Bytes of the tensors in nested dicts/lists."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_nbytes(v) for v in obj)
    return 0


def _snapshot_costs(n_params: int, repeats: int) -> dict[str, float]:
    """Milliseconds per snapshot and restore (medians) and bytes held, old and new."""
    from lr_gym.guard import Guard

    model, opt = _mlp_with_adam(n_params)
    row: dict[str, float] = {"params": sum(p.numel() for p in model.parameters())}
    old_take, old_restore, held = [], [], None
    for _ in range(repeats):
        held = None  # the previous copy goes first, as when the guard replaced it
        t0 = time.perf_counter_ns()
        held = _deepcopy_snapshot(model, opt)
        old_take.append(time.perf_counter_ns() - t0)
    row["old_held_bytes"] = _nbytes(held)
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        _deepcopy_restore(held, model, opt)
        old_restore.append(time.perf_counter_ns() - t0)
    held = None
    guard = Guard(opt, model, memory=None)
    t0 = time.perf_counter_ns()
    guard.start(1.0)  # allocates the buffers
    row["new_first_snapshot_ms"] = (time.perf_counter_ns() - t0) / 1e6
    new_take, new_restore = [], []
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        guard.check(1.0 / (i + 2), diverged=False, raised=False)  # a new best: a snapshot
        new_take.append(time.perf_counter_ns() - t0)
    row["new_held_bytes"] = guard.nbytes
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        assert guard.check(math.nan, diverged=True, raised=False)  # a restore
        new_restore.append(time.perf_counter_ns() - t0)
    for name, ns in (("old_snapshot_ms", old_take), ("old_restore_ms", old_restore),
                     ("new_snapshot_ms", new_take), ("new_restore_ms", new_restore)):
        row[name] = statistics.median(ns) / 1e6
    row["snapshot_ratio_new_vs_old"] = row["new_snapshot_ms"] / row["old_snapshot_ms"]
    row["restore_ratio_new_vs_old"] = row["new_restore_ms"] / row["old_restore_ms"]
    return row


def measure_snapshots(sizes: dict[str, int], repeats: int) -> dict[str, dict[str, float]]:
    """:func:`_snapshot_costs` per model size (one model in memory at a time)."""
    return {label: _snapshot_costs(n, repeats) for label, n in sizes.items()}


def _snapshot_table(res: dict[str, dict[str, float]]) -> list[str]:
    table = ["\nThe guard's snapshot: an MLP with Adam's state on CPU; old = deepcopy on the "
             "tensors' device, new = CPU buffers refilled in place (held on the CPU, never on "
             "the device).",
             "| model | params | held MiB (old = new) | snapshot ms old | new | new/old | new "
             "first (allocates) | restore ms old | new | new/old |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {k} | {r['params']:,} | {r['new_held_bytes'] / 2**20:.0f} | "
              f"{r['old_snapshot_ms']:.1f} | {r['new_snapshot_ms']:.1f} | "
              f"{r['snapshot_ratio_new_vs_old']:.2f} | {r['new_first_snapshot_ms']:.1f} | "
              f"{r['old_restore_ms']:.1f} | {r['new_restore_ms']:.1f} | "
              f"{r['restore_ratio_new_vs_old']:.2f} |" for k, r in res.items()]
    return table


def main() -> int:
    """Runs the benchmark, prints a table and writes the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent", nargs="?", default="lr_gym/default",
                   help="Controller: a pretrained name, run folder or controller file.")
    p.add_argument("--repeats", type=int, default=2000, help="Decisions timed.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    p.add_argument("--snapshot-repeats", type=int, default=7,
                   help="Snapshots and restores timed per model size.")
    p.add_argument("--snapshot-sizes", nargs="*", default=list(SNAPSHOT_SIZES),
                   choices=list(SNAPSHOT_SIZES), help="Model sizes of the snapshot section.")
    add_benchmark_arguments(p, "benchmarks/results/controller_overhead.json")
    args = parse_benchmark_args(p)
    torch.set_num_threads(args.threads)
    policy = load_controller_file(args.agent)
    measure(policy, 50)  # warm-up
    res = measure(policy, args.repeats)
    res["decision_no_guard"] = measure(policy, args.repeats, guard=False)["decision"]
    res.update(decision_parts(policy, args.repeats))
    res["digits_cnn_step"] = _stats(_cnn_steps(args.repeats))
    print(f"LRController overhead on CPU ({args.threads} thread(s), K={K}, "
          f"{args.repeats} decisions; note: the machine may be loaded)")
    print(f"{'what':<22}{'median us':>12}{'mean us':>12}{'p90 us':>12}{'n':>8}")
    for name, s in res.items():
        print(f"{name:<22}{s['median_us']:>12.1f}{s['mean_us']:>12.1f}{s['p90_us']:>12.1f}"
              f"{s['n']:>8}")
    per_step = res["decision"]["median_us"] / K + res["step_float_loss"]["median_us"]
    print(f"amortised per optimizer step (median decision / K + median step): {per_step:.1f} us")
    table = ["| what | median µs | mean µs | p90 µs |", "|---|---|---|---|"]
    table += [f"| {name} | {s['median_us']:.1f} | {s['mean_us']:.1f} | {s['p90_us']:.1f} |"
              for name, s in res.items()]
    table.append(f"| per optimizer step, amortised over K = {K} | {per_step:.1f} | | |")
    ratio = per_step / res["digits_cnn_step"]["median_us"]
    table.append(f"\nControlling the LR adds {100 * ratio:.2f}% to a Digits-CNN optimizer "
                 "step (batch 64), measured in the same run.")
    guard_ratio = res["decision"]["median_us"] / res["decision_no_guard"]["median_us"]
    table.append(f"A decision with the guard (a new best each time: its worst case) takes "
                 f"{guard_ratio:.1f}x as long as without.")
    print("\n".join(table[-2:]).strip())
    snapshots = measure_snapshots({k: SNAPSHOT_SIZES[k] for k in args.snapshot_sizes},
                                  args.snapshot_repeats)
    table += _snapshot_table(snapshots)
    print("\n".join(_snapshot_table(snapshots)))
    out, _ = write_results(args.output, {
        "meta": meta(), "results": res, "steps_per_action": K,
        "amortised_per_step_us": per_step, "overhead_vs_digits_cnn_step": ratio,
        "guard_decision_ratio": guard_ratio, "guard_snapshot": snapshots,
        "snapshot_repeats": args.snapshot_repeats,
        "policy": policy.config["policy"]}, "\n".join(table))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
