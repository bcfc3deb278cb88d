"""The markdown report of an evaluation: both tracks, per task and aggregated."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agents.baselines.open_loop import CONTROLS
from agents.evaluation.scoring import LEARNED, REFERENCE, TRACKS, verdict
from agents.evaluation.stats import mean_std


def _ms(xs: Sequence[float], fmt: str = ".4f") -> str:
    finite = [x for x in xs if x is not None and math.isfinite(x)]
    if not finite:
        return "n/a"
    mean, std = mean_std(finite)
    return format(mean, fmt) if len(finite) == 1 else f"{format(mean, fmt)} ± {format(std, fmt)}"


def _med(xs: Sequence[float], fmt: str = ".0f") -> str:
    m = float(np.median(xs))
    return "miss" if math.isinf(m) else ("n/a" if math.isnan(m) else format(m, fmt))


def _opt(v: float | None, fmt: str) -> str:
    if v is None:
        return "—"
    return "inf" if math.isinf(v) else format(v, fmt)


def aggregate_table(summary: Mapping[str, Any]) -> list[str]:
    """The aggregate table of one track (what README quotes)."""
    lines = [
        "| controller | runs | IQM test metric [95% CI] | profile score | "
        "P(learned > this) [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for a in summary["aggregate"]:
        poi = a.get("p_improvement")
        name = f"**{a['controller']}** (learned)" if a["controller"] == LEARNED else a["controller"]
        lines.append(
            f"| {name} | {a['runs']} | {a['iqm_test']:.4f} [{a['iqm_low']:.4f}, "
            f"{a['iqm_high']:.4f}] | {_opt(a.get('profile_score'), '.3f')} | "
            + ("—" if poi is None else f"{poi[0]:.2f} [{poi[1]:.2f}, {poi[2]:.2f}]") + " |"
        )
    return lines


def track_summary(track: str, summary: Mapping[str, Any], heading: str = "##") -> list[str]:
    """A track's heading, aggregate table and verdict (what ``table.md`` and README hold)."""
    lines = [f"{heading} {TRACKS[track]}", "", *aggregate_table(summary), ""]
    v = verdict(summary)
    if any(v.values()):
        lines += ["On the final test metric, the learned controller:"]
        for key, label in (("wins", "beats"), ("ties", "ties with"), ("losses", "loses to")):
            lines.append(f"- {label}: " + (", ".join(v[key]) if v[key] else "none"))
        lines.append("")
    return lines


def controls_legend(summaries: Mapping[str, Mapping[str, Any]],
                    meta: Mapping[str, Any] | None) -> list[str]:
    """What the open-loop control rows are (:mod:`agents.baselines.open_loop`), if any."""
    rows = {a["controller"] for s in summaries.values() for a in s["aggregate"]}
    shown = [c for c in CONTROLS if c in rows]
    if not shown:
        return []
    members = sorted({c["fixed_decay"] for c in ((meta or {}).get("open_loop") or {}).values()})
    text = {
        "replay": "`replay` replays the learned controller's own mean LR per interval on each "
                  "env, from this evaluation's own learned runs (a diagnostic: no schedule "
                  "known in advance)",
        "learned_schedule": "`learned_schedule` is its mean LR against training progress on "
                            "the dev families, frozen, one schedule for every env",
        "fixed_decay": "`fixed_decay` is the fixed decay chosen on dev by the rule stated "
                       f"before the run ({', '.join(members) or 'see results.json'}; "
                       "docs/protocol.md)",
    }
    return ["Open-loop controls, each on the learned controller's own LR rule (its base "
            "optimizer and LR bounds): " + "; ".join(text[c] for c in shown) + ".", ""]


def tables_markdown(summaries: Mapping[str, Mapping[str, Any]],
                    meta: Mapping[str, Any] | None = None) -> str:
    """Every track's summary, for ``table.md``, and what the control rows are."""
    return "\n".join([*(line for t, s in summaries.items()
                        for line in track_summary(t, s, heading="####")),
                      *controls_legend(summaries, meta)])


def _track_section(track: str, summary: Mapping[str, Any]) -> list[str]:
    lines = track_summary(track, summary)
    if summary["agents"]:
        lines += ["Learned controller, agent by agent (its profile score is computed against "
                  "the baselines alone):", "",
                  "| agent | IQM test metric [95% CI] | profile score |", "|---|---|---|"]
        for a in summary["agents"]:
            lines.append(f"| `{a['agent']}` | {a['iqm_test']:.4f} [{a['iqm_low']:.4f}, "
                         f"{a['iqm_high']:.4f}] | {_opt(a['profile_score'], '.3f')} |")
        lines.append("")
    lines += [
        "| env | controller | lr0 | final val | test | epochs to 95% of final "
        "| steps to target | s to target | ratio to fastest | diverged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['env_id']} | {r['controller']} | "
            f"{'default' if r['lr0'] is None else format(r['lr0'], '.3g')} | "
            f"{_ms(r['final_val'])} | {_ms(r['test'])} | {_ms(r['convergence_epoch'], '.2f')} | "
            f"{_med(r['steps_to_target'])} | {_med(r['wall_to_target'], '.2f')} | "
            f"{_opt(r.get('ratio_to_fastest'), '.2f')} | {r['diverged']}/{r['runs']} |"
        )
    return [*lines, ""]


def report_markdown(summaries: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    """The whole report: protocol, then one section per track."""
    agents = meta["agents"] or ["none"]
    lines = [
        "# lr_gym evaluation report",
        "",
        f"Envs ({meta['split'] or 'custom'}): {', '.join(f'`{e}`' for e in meta['envs'])}.",
        f"Agents: {', '.join(f'`{a}`' for a in agents)}. Evaluation seeds {meta['seeds']} "
        f"(paired: every controller gets the same initialisation and data order).",
        f"Targets: per env, the median over target-setting seeds {meta['target_seeds']} of the "
        f"best validation metric of `{REFERENCE}`"
        + (" tuned" if meta["reference_tuned"] else " at lr0")
        + "; those runs are not scored.",
        f"External tuning: {meta['tuning_budget']} quasi-random trials per tunable baseline "
        f"and env within the baseline's own search space, on seed {meta['tuning_seed']}, "
        "validation metric only. The learned controller is never tuned.",
        "",
        "IQM: interquartile mean of the final test metric over envs x runs (a diverged run "
        "scores 0), rliable's stratified-bootstrap 95% CI; the learned row pools every agent "
        "with every seed. Profile score: AlgoPerf's area under the performance profile of "
        "steps to target (r_max 4; 1 = fastest everywhere). P(learned > this): rliable's "
        "probability of improvement on the test metric, with its 95% CI. Seconds to target "
        "exclude one-time costs (data loading, agent loading).",
        "",
    ]
    lines += controls_legend(summaries, meta)
    for track, summary in summaries.items():
        lines += _track_section(track, summary)
    targets = meta.get("targets", {})
    if targets:
        lines += ["Targets: " + ", ".join(
            f"`{k}` {v:.4f}" if v is not None else f"`{k}` none (most target-setting runs "
            "diverged: no method reaches it, and it adds nothing to the profile scores)"
            for k, v in targets.items()), ""]
    return "\n".join(lines)
