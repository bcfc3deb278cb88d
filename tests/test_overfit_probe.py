"""benchmarks/overfit_probe.py: what counts as overfitting late, and the CLI on one family."""

from __future__ import annotations

import json

from benchmarks.overfit_probe import main, overfits, summarize


def _run(metric, loss, train, diverged=False, variant="small/noisy"):
    return {"task": "t", "variant": variant, "diverged": diverged, "seconds": 0.0,
            "val_metric": metric, "val_loss": loss, "train_loss": train}


def test_a_late_fall_counts_and_noise_or_a_late_peak_does_not():
    rising = [0.1, 0.3, 0.5, 0.7, 0.8, 0.85, 0.87, 0.88, 0.89, 0.9]
    falls = [0.1, 0.5, 0.8, 0.9, 0.9, 0.88, 0.84, 0.8, 0.78, 0.77]
    loss_up = [2.0, 1.0, 0.6, 0.5, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75]
    train_down = [float("nan"), 1.5, 0.8, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05]
    res = overfits(_run(falls, loss_up, train_down), drop=0.03, late=0.8)
    assert res["metric_falls"] and res["loss_rises"] and res["peak_at"] < 0.6
    res = overfits(_run(rising, sorted(loss_up, reverse=True), train_down), 0.03, 0.8)
    assert not res["metric_falls"] and not res["loss_rises"]
    # The validation loss rising while the training loss rises too is instability.
    assert not overfits(_run(falls, loss_up, list(reversed(train_down))), 0.03, 0.8)[
        "loss_rises"]
    assert not overfits(_run(falls, loss_up, train_down, diverged=True), 0.03, 0.8)[
        "metric_falls"]
    rows = summarize("fam", [_run(falls, loss_up, train_down),
                             _run(rising, loss_up[::-1], train_down, variant="other")],
                     0.03, 0.8)
    assert [r["variant"] for r in rows] == ["small/noisy", "other", "all"]
    assert [r["metric_falls_frac"] for r in rows] == [1.0, 0.0, 0.5]


def test_cli_on_one_family(tmp_path):
    out = tmp_path / "probe.json"
    main(["--samples", "2", "--families", "tabular-mlp", "-o", str(out)])
    data = json.loads(out.read_text())
    assert [r["variant"] for r in data["rows"]][-1] == "all"
    assert len(data["runs"]["tabular-mlp"]) == 2 and "val_metric" not in data["runs"][
        "tabular-mlp"][0]
    assert "Metric falls late" in out.with_suffix(".md").read_text()
