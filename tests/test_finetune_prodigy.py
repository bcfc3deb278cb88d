"""benchmarks/finetune_prodigy.py: Prodigy's gaps and d, and the CLI on one family."""

from __future__ import annotations

import json

import pytest

from benchmarks.finetune_prodigy import configs, main, summarize, v3_family_names


def test_configs_force_the_kind_and_a_fixed_adamw_run():
    cs = configs("digits-cnn-finetune", "shift", 3)
    assert len(cs) == 3 and {c.params["kind"] for c in cs} == {"shift"}
    assert {(c.run.optimizer, c.run.total_steps, c.run.steps_per_action) for c in cs} == {
        ("adamw", 300, 15)}
    assert v3_family_names()[-1] == "waves-conv1d-finetune"


def test_summarize_pairs_prodigy_with_each_configurations_best_static_lr():
    rows = [{"metric": "accuracy", "reference_lr": 1e-3, "prodigy_max_d_lr": [3e-2, 1e-2],
             "final_val_metric": {"x0.1": [0.9, 0.9], "x1": [0.8, 0.8], "prodigy": [0.7, 0.7]}},
            {"metric": "accuracy", "reference_lr": 1e-3, "prodigy_max_d_lr": [1e-3, 1e-3],
             "final_val_metric": {"x0.1": [0.5, 0.5], "x1": [0.6, 0.6], "prodigy": [0.6, 0.6]}}]
    s = summarize("f", "shift", rows, margin=0.02)
    assert s["prodigy_minus_best"] == pytest.approx((-0.2 + 0.0) / 2)
    assert s["prodigy_minus_ref"] == pytest.approx((-0.1 + 0.0) / 2)
    assert s["prodigy_worse_frac"] == 0.5 and s["best_static"] == "x0.1"
    # d over each configuration's best LR, 1e-4 (x0.1) then 1e-3 (x1): 300, 100, 1, 1.
    assert s["prodigy_d_over_best_lr"] == pytest.approx(50.5)


@pytest.mark.slow
def test_cli_on_one_family_and_one_id(tmp_path):
    out = tmp_path / "p.json"
    main(["--families", "teacher-mlp-finetune", "--configs", "1", "--seeds", "1",
          "--scales", "1", "3", "--ids", "lr_gym/Digits-CNN-Finetune-v1", "--id-seeds", "1",
          "-o", str(out)])
    data = json.loads(out.read_text())
    assert [r["kind"] for r in data["rows"]] == ["shift", "new-labels", "new-head",
                                                  "new-labels"]
    assert data["rows"][-1]["id"] == "lr_gym/Digits-CNN-Finetune-v1"
    assert all(r["prodigy_d_over_best_lr"] > 0 for r in data["rows"])
