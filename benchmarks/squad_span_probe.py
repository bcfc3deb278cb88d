"""Does the SQuAD v2 MiniLM preset learn answer spans, and how fast? A sizing probe.

SQuAD v2's official F1 hides span learning early on: while the span head is weak, the
null score wins every question, so F1 equals the no-answer share and HasAns F1 is 0.
This probe fine-tunes ``lr_gym/SQuADv2-MiniLM-CPU-v4``'s model on its training
features with a chosen LR, length and budget (linear warmup, then constant or linear
decay; AdamW and grad clip 1.0 as in the preset) and, every ``--eval-every`` steps, on
the whole validation set (one forward pass) reports:

* the validation loss on its features;
* the *forced-span* HasAns F1: the best span always answered (null never chosen), which
  rises as soon as spans are learned;
* F1 and HasAns F1 of the official rule at null-score difference 0, the numbers the
  env's metric is made of today;
* the official script's *best-threshold* F1 (``best_f1``: the null-score threshold that
  maximises F1 on these questions) and HasAns F1 at that threshold. Chosen on the same
  questions it scores, so it is an upper bound for a threshold tuned on validation.

Not an env episode: a fixed recipe, to size a preset before any controller runs. The
defaults are the v2 recipe (256/64 windows, 240 steps), which made the committed
``benchmarks/results/squad_span_probe.md``; v3's is ``--lr 1e-4 --max-length 128
--doc-stride 32 --steps 120``, and ``benchmarks/results/squad_span_probe_v4/`` holds
the validation probes that chose v4's LR. Writes ``--output`` (JSON, and a markdown
table beside it).

Usage:
    python benchmarks/squad_span_probe.py --lr 3e-4 --steps 450 --max-length 128
        --doc-stride 32 [--schedule constant] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


TRAIN_WINDOWS = ("all", "answerable-spans", "spans-only")


def select_windows(train, which: str):
    """The training features kept by ``--train-windows`` (see its help)."""
    if which == "all":
        return train
    span = train.tensors["start_positions"].numpy() > 0
    if which == "answerable-spans":
        answerable = np.array([bool(train.examples.answer_texts[q])
                               for q in train.example_index])
        span = span | ~answerable
    return train.subset(np.flatnonzero(span))


def write(args: argparse.Namespace, rows: list[dict[str, float]], train_features: int) -> None:
    """``--output`` (JSON) and the markdown table beside it, for the rows so far."""
    from agents.evaluation.results import meta as run_meta
    from agents.evaluation.results import write_results

    recipe_args = {k: v for k, v in vars(args).items() if k not in ("data_dir", "output")}
    meta = run_meta(**recipe_args, load_avg_end=os.getloadavg()[0],
                    train_features=train_features, last_step=rows[-1]["step"])
    # -inf (answer nothing) is not JSON: null.
    clean = [{k: (v if np.isfinite(v) else None) for k, v in r.items()} for r in rows]
    head = ("| step | lr | train loss | val loss | forced-span HasAns F1 | F1 (threshold 0) "
            "| HasAns F1 (0) | best F1 | best threshold | HasAns F1 (best) | wall s |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['step']} | {r['lr']:.2e} | {r['train_loss']:.3f} | "
                   f"{r['val_loss']:.3f} | {r['forced_span_hasans_f1']:.3f} | {r['f1']:.3f} | "
                   f"{r['hasans_f1']:.3f} | {r['best_f1']:.3f} | {r['best_threshold']:.2f} | "
                   f"{r['best_hasans_f1']:.3f} | {r['wall_s']:.0f} |\n" for r in rows)
    recipe = (f"seed {args.seed}, lr {args.lr:g}, {args.steps} steps (rows up to step "
              f"{meta['last_step']}), "
              f"training windows {args.train_windows}, answer-less windows kept "
              f"{args.null_window_keep:g}, "
              f"batch {args.batch_size}, {args.max_length}/{args.doc_stride} window, warmup "
              f"{args.warmup_frac:g} then {args.schedule}; {args.threads} threads; load "
              f"average {meta['load_avg_end']:.1f} on {meta['cpus']} CPUs at the last row.")
    write_results(args.output, {"meta": meta, "rows": clean},
                  f"Made by `python benchmarks/squad_span_probe.py` on {meta['date']}: "
                  f"{recipe}\n\n" + head + body)


SUMMARY_COLUMNS = {"val_loss": "val loss", "forced_span_hasans_f1": "forced-span HasAns F1",
                   "best_f1": "best F1", "best_hasans_f1": "HasAns F1 (best)"}


def summarize(folder: Path) -> str:
    """Writes ``folder/summary.md`` and returns its text.

    It holds the last row of every probe JSON in ``folder`` and, per LR, the mean over
    its seeds: the numbers a preset's LR is chosen on.
    """
    probes = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))]
    if not probes:
        raise SystemExit(f"No probe JSON in {folder}; run probes with -o {folder}/<name>.json.")
    from agents.evaluation.stats import markdown_table

    probes.sort(key=lambda d: (d["meta"]["lr"], d["meta"]["seed"]))
    cols = list(SUMMARY_COLUMNS.values())
    by_lr: dict[float, list[dict]] = {}
    per_probe = []
    for d in probes:
        last = d["rows"][-1]
        by_lr.setdefault(d["meta"]["lr"], []).append(last)
        per_probe.append([f"{d['meta']['lr']:g}", d["meta"]["seed"], last["step"],
                          *(last[k] for k in SUMMARY_COLUMNS)])
    per_lr = [[f"{lr:g}", len(rows), *(np.mean([r[k] for r in rows]) for k in SUMMARY_COLUMNS)]
              for lr, rows in by_lr.items()]
    text = (f"Made by `python benchmarks/squad_span_probe.py --summarize {folder}`: the last "
            "row of each probe (recipes in the files beside this one).\n\n"
            + markdown_table(["lr", "seed", "step", *cols], per_probe, ".3f") + "\n\n"
            + markdown_table(["lr", "seeds", *cols], per_lr, ".3f") + "\n")
    from lr_gym.files import write_text_atomic

    write_text_atomic(folder / "summary.md", text)  # no JSON: the probes' are beside it
    return text


def _load_task(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """Builds the preset's task and loads its data; returns ``(task, train, val)``.

    Sets the thread count and fills in ``args.null_window_keep`` (the preset's by default)
    first; ``train`` is the training features ``--train-windows`` selects.
    """
    import lr_gym
    from lr_gym.tasks.seed.squad import squad_v2_minilm_cpu

    torch.set_num_threads(args.threads)
    if args.null_window_keep is None:  # the preset's, recorded with the rows
        args.null_window_keep = squad_v2_minilm_cpu.defaults.get("null_window_keep", 1.0)
    task = lr_gym.get_task("SQuADv2-MiniLM-CPU", data_dir=args.data_dir,
                           max_length=args.max_length, doc_stride=args.doc_stride,
                           batch_size=args.batch_size, null_window_keep=args.null_window_keep)
    data = task.data_fn()
    train, val = select_windows(data.train, args.train_windows), data.val
    print(f"{len(train)} of {len(data.train)} training features ({args.train_windows}).")
    return task, train, val


def _lr_schedule(args: argparse.Namespace) -> Callable[[int], float]:
    """The LR of each step: linear warmup, then constant or linear decay to 0."""
    warmup = max(1, round(args.warmup_frac * args.steps))

    def lr_at(step: int) -> float:
        if step <= warmup:
            return args.lr * step / warmup
        if args.schedule == "constant":
            return args.lr
        return args.lr * (args.steps - step) / max(1, args.steps - warmup)

    return lr_at


def _train(args: argparse.Namespace, task: Any, model: torch.nn.Module,
           opt: torch.optim.Optimizer, train: Any, lr_at: Callable[[int], float],
           evaluate: Callable[[int, float], None]) -> None:
    """Trains ``args.steps`` steps, calling ``evaluate(step, mean train loss)`` on schedule."""
    from lr_gym.tasks.base import iterate_batches

    gen = torch.Generator().manual_seed(args.seed)
    # Epoch after epoch, as the env does: a thinned training set runs out within the budget.
    batches = itertools.chain.from_iterable(
        iterate_batches(train, args.batch_size, generator=gen, drop_last=True,
                        collate_fn=task.collate_fn) for _ in itertools.count())
    recent: list[float] = []
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = task.loss_fn(model, next(batches))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            evaluate(step, float(np.mean(recent)))
            recent = []


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from agents.evaluation.results import add_benchmark_arguments, parse_benchmark_args

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summarize", metavar="DIR", type=Path, default=None,
                   help="Write DIR/summary.md from the probe JSONs in DIR and exit.")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=240)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--doc-stride", type=int, default=64)
    p.add_argument("--warmup-frac", type=float, default=0.1)
    p.add_argument("--schedule", choices=("constant", "linear"), default="linear",
                   help="After warmup: constant, or linear decay to 0 (HF's recipe).")
    p.add_argument("--train-windows", choices=TRAIN_WINDOWS, default="all",
                   help="Training features: all (HF's preprocessing); answerable-spans (drop "
                        "the answer-less windows of answerable questions); spans-only (only "
                        "windows that hold an answer, a diagnostic).")
    p.add_argument("--null-window-keep", type=float, default=None,
                   help="Fraction of answer-less training windows kept (the task's "
                        "null_window_keep; default: the preset's), applied before "
                        "--train-windows.")
    p.add_argument("--eval-every", type=int, default=40)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=os.environ.get("LR_GYM_DATA_DIR", str(DEFAULT_DATA)))
    add_benchmark_arguments(p, "benchmarks/results/squad_span_probe.json")
    args = parse_benchmark_args(p, argv)
    if args.summarize is not None:
        print(summarize(args.summarize), end="")
        return 0

    from lr_gym.tasks.seed.squad import (
        apply_null_threshold,
        best_null_threshold,
        qa_logits,
        span_candidates,
        squad_v2_scores,
    )

    task, train, val = _load_task(args)
    golds = val.examples.answer_texts
    torch.manual_seed(args.seed)
    model, cpu = task.model_fn(), torch.device("cpu")
    opt = task.build_optimizer(model)
    lr_at = _lr_schedule(args)
    rows, t0, c0 = [], time.perf_counter(), time.process_time()

    def evaluate(step: int, train_loss: float) -> None:
        model.eval()
        with torch.no_grad():
            start, end, loss = qa_logits(model, val, task, cpu)
        model.train()
        texts, diffs = span_candidates(start, end, val)
        best = best_null_threshold(golds, texts, diffs)
        forced, zero, tuned = (squad_v2_scores(golds, apply_null_threshold(texts, diffs, t))
                               for t in (np.inf, 0.0, best))
        rows.append({"step": step, "lr": lr_at(step), "train_loss": train_loss,
                     "val_loss": loss, "forced_span_hasans_f1": forced["HasAns_f1"],
                     "f1": zero["f1"], "hasans_f1": zero["HasAns_f1"],
                     "best_f1": tuned["f1"], "best_threshold": best,
                     "best_hasans_f1": tuned["HasAns_f1"],
                     "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0})
        print(" ".join(f"{k} {v:.4g}" for k, v in rows[-1].items()), flush=True)
        write(args, rows, len(train))  # after every eval: a stopped probe keeps its rows

    evaluate(0, float("nan"))
    _train(args, task, model, opt, train, lr_at, evaluate)

    print(f"Wrote {Path(args.output)} and {Path(args.output).with_suffix('.md')}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
