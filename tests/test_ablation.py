"""benchmarks/ablation.py: the v2 decision rule, as its docstring states it."""

from __future__ import annotations

from benchmarks.ablation import STUDIES, v2_decision

ARMS = list(STUDIES["v2"].variants)  # v2, absolute-reward, sigma1-no-zero-init, v1-rule,
# prodigy-base


def _decide(area, static=0.56, p_x1=0.5, shipped=0.60):
    return v2_decision(ARMS[:len(area)], dict(zip(ARMS, area, strict=False)),
                       dict.fromkeys(ARMS, static), dict.fromkeys(ARMS, p_x1), shipped)


def test_the_highest_area_wins_and_a_tie_goes_to_the_arm_listed_first():
    assert _decide([0.63, 0.65]).winner == "absolute-reward"
    assert _decide([0.645, 0.65]).winner == "v2"  # within 0.01
    assert _decide([0.62, 0.65, 0.66, 0.64]).winner == "absolute-reward"
    assert _decide([0.62, 0.60, 0.55, 0.70]).winner == "v1-rule"
    assert _decide([0.62, 0.60, 0.55, 0.70, 0.705]).winner == "v1-rule"  # listed last
    assert _decide([0.62, 0.60, 0.55, 0.70, 0.72]).winner == "prodigy-base"


def test_the_prodigy_arm_is_v2_over_prodigy():
    assert ARMS[-1] == "prodigy-base" and STUDIES["v2"].variants["prodigy-base"] == {
        "base": "prodigy"}
    assert "prodigy-base" not in STUDIES["v2"].variant_overrides  # v2's PPO settings


def test_the_winner_ships_only_above_static_and_the_shipped_one_and_not_worse_at_x1():
    d = _decide([0.63])
    assert d.ship and all(r.startswith("yes: ") for r in d.reasons)
    assert not _decide([0.63], static=0.64).ship
    assert not _decide([0.60], shipped=0.60).ship  # strictly above
    d = _decide([0.63], p_x1=0.44)
    assert not d.ship and d.reasons[2] == "NO: P(> static) at x1 0.44 >= 0.45"
    assert _decide([0.63], p_x1=0.45).ship
