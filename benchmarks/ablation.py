"""Env design ablations, chosen on the dev families: action mode, features, reward.

A *study* is a training env and a set of *variants* (``EnvConfig`` overrides). For each
variant, PPO controllers are trained with the training env's packaged hyperparameters
(``-n`` env steps, one run per ``--seeds`` entry, periodic evaluation off), then
evaluated pooled on the **dev** split (``lr_gym.DEV.env_ids``) against the static and
cosine baselines in the self-tuning track, 5 paired seeds. Choices are made on dev ids:
test ids are refused (exit code 2). Finished training runs are reused, a stopped run
resumes from its last checkpoint, and the evaluation resumes, so a stopped ablation
picks up where it was.

Studies:
    ``mode``: anchored vs recursive on the fixed training mix (the v0 choice).
    ``v1``: on the sampled training families, the v1 defaults (``default``: anchored,
    cosine, x4, :data:`~lr_gym.features.DEFAULT_FEATURES`, ``val_loss`` reward) against
    one change each: the v0 features without the new ones (``v0-features``), the
    speed-aware reward (``area-reward``), the recursive mode (``recursive``).

Decision rule (fixed before the two-seed results were read): among the variants whose
dev IQM 95% CI overlaps the best variant's, the one with the highest AlgoPerf profile
score wins (speed to target breaks a tie in final metric); the rule is applied to the
pooled seeds, never to the test split. Profile scores within 0.01 count as tied (added
when two seeds left three variants within 0.003): the tied variants get a third seed and
the rule is applied again to three seeds; still tied, the higher IQM wins.

``v2`` (controller v2, issue 21): on ``lr_gym/TrainFamilies-v2``, the v2 design
(``v2``: the static-based multiplier, the paired reward, a zero-initialised action head,
sigma 0.2, critic warm-up) against one change each: the absolute reward
(``absolute-reward``), SB3's sigma 1 without the zero start (``sigma1-no-zero-init``),
and the v1 rule (``v1-rule``: anchored cosine x4, the absolute reward and v1's PPO
settings), each with 3 PPO seeds of the same budget, evaluated pooled on the dev
LR-sensitivity benchmark (:mod:`benchmarks.lr_sensitivity`). Every arm observes v1's
features: the learnability check before any PPO (``benchmarks/learnability.py``, its
stated rule: train only on a feature set with AUC >= 0.7) passed v1's alone (0.702;
the step-size set 0.694), so no arm with the step-size features was trained. The arm
over an LR-free base (``prodigy-base``: ``base="prodigy"``, the action scaling
Prodigy's ``lr``, so every action 0 is Prodigy) was added once the env had that base,
after the first three arms had run and been decided; it is judged by the same rule and
listed last.

v2 decision rule (stated before the v2 runs were trained): the arm with the highest dev
area wins; arms within 0.01 of it tie, and a tie goes to the arm listed first (``v2``,
``absolute-reward``, ``sigma1-no-zero-init``, ``v1-rule``, ``prodigy-base``). The
winner replaces ``lr_gym/default`` only if its dev area is above static's and above the
shipped controller's (``--agent pretrained`` on the same benchmark), and its
P(learned > static) at x1 on dev is at least 0.45 (not clearly worse where lr0 is right).
The script applies the rule (:func:`v2_decision`) to the arms it evaluated, beside the
shipped controller's row (``shipped``), and writes the decision under the summary.

Writes ``<output>/report_<variant>.md`` and ``results_<variant>.json`` (the evaluation
reports) and ``summary.md`` / ``summary.json`` (one row per variant); training runs and
episode logs stay under ``-f``.

Usage:
    python benchmarks/ablation.py --study v1 [-n 8192] [--seeds 0 1]
        [--variants default area-reward] [-f logs/ablation_v1]
        [-o benchmarks/results/ablation_v1] [--env ID ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.training.seeds import train_seeds
from lr_gym.features import V0_FEATURES

ROOT = Path(__file__).resolve().parents[1]
ANCHORED = {"mode": "anchored", "schedule": "cosine", "max_factor": 4.0}


@dataclass(frozen=True)
class Study:
    """A training env, its variants (name -> ``EnvConfig`` overrides) and defaults."""

    train_env: str
    variants: dict[str, dict[str, Any]]
    n_timesteps: int
    seeds: tuple[int, ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    variant_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    sensitivity: bool = False
    """Evaluate on the dev LR-sensitivity benchmark instead of the dev envs' lr0."""


STUDIES = {
    "mode": Study(
        "lr_gym/EmbeddedMix-v1",
        {"anchored": ANCHORED,
         "recursive": {"mode": "recursive", "schedule": "constant", "max_factor": 2.0}},
        20000, (0, 1, 2)),
    "v1": Study(
        "lr_gym/TrainFamilies-v1",
        {"default": ANCHORED,
         "v0-features": {**ANCHORED, "features": [
             f for f in V0_FEATURES if f != "log_multiplier"]},
         "area-reward": {**ANCHORED, "reward": "val_loss_area"},
         "recursive": {"mode": "recursive", "schedule": "cosine", "max_factor": 2.0}},
        8192, (0, 1), {"n_envs": 8, "n_steps": 64}),
    "v2": Study(
        "lr_gym/TrainFamilies-v2",
        {"v2": {},
         "absolute-reward": {"reward": "val_loss"},
         "sigma1-no-zero-init": {},
         "v1-rule": {**ANCHORED, "lr_min_factor": 1e-3, "lr_max_factor": 30.0,
                     "reward": "val_loss", "action_cost": 0.0},
         "prodigy-base": {"base": "prodigy"}},
        16384, (0, 1, 2),
        variant_overrides={
            "sigma1-no-zero-init": {"log_std_init": 0.0, "zero_init_action": False},
            "v1-rule": {"gamma": 0.99, "clip_range": 0.2, "target_kl": None,
                        "normalize_reward": True, "log_std_init": 0.0,
                        "zero_init_action": False, "critic_warmup": 0}},
        sensitivity=True),
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    import lr_gym
    from agents.evaluation.results import add_benchmark_arguments

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", choices=sorted(STUDIES), default="mode")
    p.add_argument("--variants", nargs="+", default=None,
                   help="Variants to run (default: all of the study's).")
    p.add_argument("-n", "--n-timesteps", type=int, default=None,
                   help="Env steps per PPO run (default: the study's).")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="PPO seeds per variant (one agent each, pooled in the evaluation; "
                        "default: the study's).")
    p.add_argument("-f", "--log-folder", default=None,
                   help="Training runs and evaluation logs (default: logs/ablation_<study>; "
                        "logs/mode_ablation for the mode study).")
    add_benchmark_arguments(
        p, None, aliases=("--results",),
        output_help="Where the reports and the summary are written (default: "
                    "benchmarks/results/ablation_<study>; .../mode_ablation for mode).")
    p.add_argument("--train-only", action="store_true",
                   help="Train the variants' runs and stop (evaluate later).")
    p.add_argument("--n-boot", type=int, default=None,
                   help="Bootstrap samples of the sensitivity benchmark's CIs (default: its "
                        "own; the decision rule reads point estimates only).")
    p.add_argument("--env", nargs="+", default=list(lr_gym.DEV.env_ids),
                   help="Evaluation env ids (dev split by default; test ids are refused).")
    return p


def check_envs(env_ids: Sequence[str]) -> str | None:
    """The error message if ``env_ids`` cannot be used for a design choice, else None."""
    import gymnasium as gym

    import lr_gym

    unknown = [e for e in env_ids if e not in gym.registry]
    if unknown:
        return f"unknown env id(s) {', '.join(map(repr, unknown))}."
    try:
        lr_gym.refuse_split(env_ids, "test", what="choosing an env design")
    except ValueError as err:
        return str(err)
    return None


def evaluate_command(runs: Path | Sequence[Path], env_ids: Sequence[str],
                     out: str | Path, packages: Sequence[str] = ()) -> list[str]:
    """The ``evaluate_agent.py`` command line that evaluates ``runs`` on ``env_ids``.

    ``packages`` (``--gym-packages``) are passed on: the evaluation's workers import them.
    """
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    return [sys.executable, str(ROOT / "evaluate_agent.py"), "--agent", *map(str, runs),
            "--env", *env_ids, "--baselines", "static", "cosine", "--track", "self",
            "-o", str(out), "--no-progress", "--no-plot",
            *(["--gym-packages", *packages] if packages else [])]


def sensitivity(runs: Sequence[Path | str], variant: str, root: Path, results: Path,
                seeds: Sequence[int], n_boot: int | None = None,
                packages: Sequence[str] = ()) -> int:
    """The dev LR-sensitivity benchmark of one variant's pooled runs.

    The baselines' episodes are shared by every variant (one ``runs.jsonl`` under
    ``root``); each variant's table and results are copied to ``results``.
    """
    from agents.evaluation.results import copy_result

    sens = root / "sensitivity"
    code = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lr_sensitivity.py"),
                           "--split", "dev", "--agent", *map(str, runs), "-o", str(sens),
                           *(["--n-boot", str(n_boot)] if n_boot else []),
                           *(["--gym-packages", *packages] if packages else [])],
                          cwd=ROOT).returncode
    if code == 0:
        copy_result(sens / "dev" / "table.md", results / f"sensitivity_{variant}.md")
        copy_result(sens / "dev" / "results.json", results / f"sensitivity_{variant}.json")
    return code


SHIPPED = "shipped"
"""The row of the controller shipped now (``--agent pretrained``) in a sensitivity study."""
AREA_TIE = 0.01
"""v2 rule: arms within this of the best dev area tie (the arm listed first wins)."""
MIN_P_X1 = 0.45
"""v2 rule: the winner's P(learned > static) at x1 must be at least this to ship."""


@dataclass(frozen=True)
class Decision:
    """The v2 decision rule applied to the dev sensitivity results."""

    winner: str
    ship: bool
    reasons: tuple[str, ...]


def v2_decision(order: Sequence[str], area: dict[str, float], static_area: dict[str, float],
                p_static_x1: dict[str, float], shipped_area: float) -> Decision:
    """The module docstring's v2 rule: the winning arm, and whether it replaces the default.

    Args:
        order: The arms in the study's order (ties go to the first).
        area: Each arm's dev area.
        static_area: Static's area in each arm's benchmark.
        p_static_x1: Each arm's P(learned > static) at x1.
        shipped_area: The shipped controller's dev area.
    """
    best = max(area[v] for v in order)
    winner = next(v for v in order if area[v] >= best - AREA_TIE)
    checks = {f"dev area {area[winner]:.3f} > static's {static_area[winner]:.3f}":
              area[winner] > static_area[winner],
              f"dev area {area[winner]:.3f} > the shipped controller's {shipped_area:.3f}":
              area[winner] > shipped_area,
              f"P(> static) at x1 {p_static_x1[winner]:.2f} >= {MIN_P_X1}":
              p_static_x1[winner] >= MIN_P_X1}
    return Decision(winner, all(checks.values()),
                    tuple(("yes: " if ok else "NO: ") + c for c, ok in checks.items()))


def write_sensitivity_summary(names: Sequence[str], results: Path, study: Study,
                              seeds: Sequence[int], n: int) -> None:
    """The dev sensitivity summary, then the v2 rule's decision.

    One row per variant (and the shipped controller): its dev area and P(learned >
    static) per scale.
    """
    from agents.evaluation.results import meta, write_results
    from agents.evaluation.stats import markdown_table

    rows, data_of = [], {}
    for variant in [*names, SHIPPED]:
        data = data_of[variant] = json.loads(
            (results / f"sensitivity_{variant}.json").read_text())
        learned, imp = data["methods"]["learned"], data["improvement"].get("static", {})
        label = f"{SHIPPED} (lr_gym/default, before)" if variant == SHIPPED else variant
        rows.append([label, f"{learned['area']:.3f} [{learned['low']:.3f}, "
                              f"{learned['high']:.3f}]",
                     f"{data['methods']['static']['area']:.3f}",
                     *[f"{imp[k][0]:.2f} [{imp[k][1]:.2f}, {imp[k][2]:.2f}]" for k in imp]])
    scales = list(json.loads((results / f"sensitivity_{names[0]}.json").read_text())
                  ["improvement"].get("static", {}))
    table = markdown_table(["variant", "dev area [95% CI]", "static's area",
                            *[f"P(> static) {k}" for k in scales]], rows)
    arms = [v for v in study.variants if v in names]
    d = v2_decision(arms, {v: data_of[v]["methods"]["learned"]["area"] for v in arms},
                    {v: data_of[v]["methods"]["static"]["area"] for v in arms},
                    {v: data_of[v]["improvement"]["static"]["x1"][0] for v in arms},
                    data_of[SHIPPED]["methods"]["learned"]["area"])
    missing = [v for v in study.variants if v not in names]
    among = f" among the arms run (not run: {', '.join(missing)})" if missing else ""
    decision = (f"Decision (the rule in benchmarks/ablation.py, applied by it): **{d.winner}** "
                f"wins{among}; it {'replaces' if d.ship else 'does not replace'} lr_gym/default: "
                + "; ".join(d.reasons) + ".")
    write_results(results / "summary.json",
                  {"meta": meta(), "arms": arms, "not_run": missing, "winner": d.winner,
                   "ship": d.ship, "reasons": list(d.reasons)},
                  f"Trained on {study.train_env}, PPO seeds {list(seeds)}, {n} env steps each; "
                  f"evaluated pooled on the dev LR-sensitivity benchmark "
                  f"(benchmarks/lr_sensitivity.py --split dev).\n\n{table}\n\n{decision}\n")
    print(f"{table}\n\n{decision}")


def summary_table(summary: dict[str, dict]) -> str:
    """The markdown table of an evaluated study: one row per variant."""
    lines = ["| variant | EnvConfig overrides | agents | IQM dev test metric [95% CI] | "
             "profile score | P(PPO > static) [95% CI] | P(PPO > cosine) [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    for variant, s in summary.items():
        pois = [s.get(f"{b}_p_improvement") for b in ("static", "cosine")]
        kw = ", ".join(f"{k}={v}" for k, v in s["env_kwargs"].items() if k != "features")
        if "features" in s["env_kwargs"]:
            kw += f", {len(s['env_kwargs']['features'])} features"
        lines.append(
            f"| {variant} | {kw} | {s['agents']} | "
            f"{s['ppo_iqm_test']:.4f} [{s['ppo_iqm_low']:.4f}, {s['ppo_iqm_high']:.4f}] | "
            f"{s['ppo_profile_score']:.3f} | "
            + " | ".join("—" if p is None else f"{p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}]"
                         for p in pois) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from agents.evaluation.results import copy_result, parse_benchmark_args, write_results

    args = parse_benchmark_args(build_parser(), argv)
    if (error := check_envs(args.env)) is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    study = STUDIES[args.study]
    names = args.variants or list(study.variants)
    unknown = sorted(set(names) - set(study.variants))
    if unknown:
        print(f"error: unknown variant(s) {unknown} of study {args.study!r}; choose from "
              f"{list(study.variants)}.", file=sys.stderr)
        return 2
    n = args.n_timesteps or study.n_timesteps
    seeds = args.seeds or list(study.seeds)
    name = "mode_ablation" if args.study == "mode" else f"ablation_{args.study}"
    root = Path(args.log_folder or f"logs/{name}")
    results = Path(args.output or f"benchmarks/results/{name}")
    root.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    summary = {}
    for variant in names:
        env_kwargs = study.variants[variant]
        try:
            runs = train_seeds(root / variant, seeds, n, env_kwargs, env_id=study.train_env,
                               **study.overrides, **study.variant_overrides.get(variant, {}))
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        if args.train_only:
            continue
        if study.sensitivity:
            code = sensitivity(runs, variant, root, results, seeds, args.n_boot,
                               args.gym_packages)
            if code != 0:
                return code
            continue
        # One evaluation folder per agent set: adding a seed is a new evaluation.
        out = root / f"eval_{variant}_seeds{'-'.join(map(str, seeds))}"
        done = subprocess.run(evaluate_command(runs, args.env, out, args.gym_packages),
                              cwd=ROOT)
        if done.returncode != 0:
            return done.returncode
        copy_result(out / "report.md", results / f"report_{variant}.md")
        copy_result(out / "results.json", results / f"results_{variant}.json")
        agg = {a["controller"]: a for a in
               json.loads((out / "results.json").read_text())["tracks"]["self"]["aggregate"]}
        summary[variant] = {"env_kwargs": env_kwargs, "agents": len(runs), **{
            f"{c}_{k}": agg[c].get(k)
            for c in agg for k in ("iqm_test", "iqm_low", "iqm_high", "profile_score",
                                   "p_improvement")}}
    if args.train_only or study.sensitivity:
        if study.sensitivity and not args.train_only:
            # The rule compares the winner with the controller shipped now.
            code = sensitivity(["pretrained"], SHIPPED, root, results, seeds, args.n_boot,
                               args.gym_packages)
            if code != 0:
                return code
            write_sensitivity_summary(names, results, study, seeds, n)
        return 0
    table = summary_table(summary)
    write_results(results / "summary.json", summary,
                  f"{args.study} ablation: trained on {study.train_env}, evaluated on the dev "
                  f"envs {', '.join(args.env)}; PPO seeds {seeds}, {n} env steps each; "
                  f"self-tuning track.\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
