from __future__ import annotations

import yaml

from agents.train import train_seeds, trained_run


def _fake_run(root, name, seed, n, model=True):
    run = root / "ppo" / name
    run.mkdir(parents=True)
    (run / "config.yml").write_text(yaml.safe_dump({"seed": seed,
                                                    "hyperparams": {"n_timesteps": n}}))
    if model:
        (run / "model.zip").write_bytes(b"zip")
    return run


def test_trained_run_matches_seed_budget_and_a_finished_model(tmp_path):
    done = _fake_run(tmp_path, "EmbeddedMix-v0_1", 0, 64)
    _fake_run(tmp_path, "EmbeddedMix-v0_2", 1, 64, model=False)  # killed before saving
    assert trained_run(tmp_path, 0, 64) == done
    assert trained_run(tmp_path, 0, 128) is None
    assert trained_run(tmp_path, 1, 64) is None


def test_train_seeds_reuses_finished_runs(tmp_path, monkeypatch):
    import agents.train

    done = _fake_run(tmp_path, "EmbeddedMix-v0_1", 3, 64)
    monkeypatch.setattr(agents.train, "main", lambda argv: (_ for _ in ()).throw(AssertionError))
    assert train_seeds(tmp_path, [3], 64) == [done]  # nothing trained again
