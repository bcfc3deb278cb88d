"""Pinned episodes: restructuring the code must not change a single number they produce.

Each case runs one episode and compares a digest of its LRs, losses and metrics (full
float precision, ``repr``) with the value recorded when the test was written. Episodes
are bit-reproducible on CPU for one torch version (:mod:`lr_gym.reproducibility`); a
change here means behaviour changed, or torch or the CPU's instruction set did (then
re-pin on purpose, saying why).
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

import lr_gym  # noqa: F401 - registers the ids
from agents.baselines import make_baseline
from agents.controller import PolicyController
from agents.rollout import EpisodeResult, run_episode

PINNED_TORCH = "2.14.1"


def digest(res: EpisodeResult) -> str:
    data = [res.lrs, res.val_loss, res.val_metric, res.train_loss, res.steps,
            sorted(res.test.items())]
    return hashlib.sha256(repr(data).encode()).hexdigest()[:16]


def _episode(case: str, tmp_path) -> EpisodeResult:
    if case == "digits-static":
        return run_episode("lr_gym/Digits-MLP-v1", make_baseline("static"), 0)
    if case.startswith("waves-adam-"):  # a shipped controller, by its name
        name = {"waves-adam-pretrained": "pretrained", "waves-adam-task-base": "lr_gym/task-base"}
        return run_episode("lr_gym/Waves-Conv1D-Adam-v1", PolicyController.load(name[case]), 1)
    from tests.tasks.seed.test_conll import TINY, _write

    root = tmp_path / "data"
    for split, n in (("train", 24), ("validation", 8), ("test", 12)):
        _write(root, split, n)
    return run_episode("lr_gym/CoNLL2003-BiLSTMCRF-CPU-v1", make_baseline("cosine"), 0,
                       env_kwargs={"task_kwargs": {"data_dir": str(root), **TINY}})


# Recorded at commit 93b9e10 (before this session's restructuring, one torch thread) and
# unchanged since, but for the shipped controllers' episodes: lr_gym/default's was
# re-recorded each time a controller replaced it (the v1 file gave be3af7d32b9d1ee7;
# controller v2, lr_gym/task-base since the Prodigy-base controller replaced it,
# ecf2a6ff4939c94d).
PINS = {
    "digits-static": "36abd400d66abd8b",
    "waves-adam-pretrained": "7b93570d2f969988",
    "waves-adam-task-base": "ecf2a6ff4939c94d",
    "conll-tiny-cosine": "ffd401913613ae2f",
}


@pytest.mark.skipif(not torch.__version__.startswith(PINNED_TORCH),
                    reason=f"pinned on torch {PINNED_TORCH}; other versions round differently")
@pytest.mark.parametrize("case", sorted(PINS))
def test_pinned_episode_numbers_are_unchanged(case, tmp_path):
    res = _episode(case, tmp_path)
    assert digest(res) == PINS[case], json.dumps(
        {"case": case, "digest": digest(res), "final_val_loss": repr(res.val_loss[-1])})
