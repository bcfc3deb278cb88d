"""Pinned episodes: restructuring the code must not change a single number they produce.

Each case runs one episode and compares a digest of its LRs, losses and metrics (full
float precision, ``repr``) with the value recorded when the test was written. Episodes
are bit-reproducible on CPU for one torch version (:mod:`lr_gym.reproducibility`); a
change here means behaviour changed, or torch did (then re-pin on purpose, saying why).
Pins are kept per CPU instruction set (``torch.backends.cpu.get_cpu_capability()``, which
result files record too): the same code gives other last bits on AVX2 and AVX-512.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

import lr_gym  # noqa: F401 - registers the ids
from agents.baselines import make_baseline
from agents.controller import PolicyController
from agents.evaluation.rollout import EpisodeResult, run_episode

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


# Pins per CPU instruction set (torch's CPU capability): torch's and MKL's vector kernels
# round differently on AVX2 and AVX-512, so one episode has one digest per capability.
PINS = {
    # Recorded at commit 93b9e10 (before that session's restructuring, one torch thread)
    # and unchanged since, but for the shipped controllers' episodes: lr_gym/default's was
    # re-recorded each time a controller replaced it (the v1 file gave be3af7d32b9d1ee7;
    # controller v2, lr_gym/task-base since the Prodigy-base controller replaced it,
    # ecf2a6ff4939c94d).
    "AVX2": {
        "digits-static": "36abd400d66abd8b",
        "waves-adam-pretrained": "7b93570d2f969988",
        "waves-adam-task-base": "ecf2a6ff4939c94d",
        "conll-tiny-cosine": "ffd401913613ae2f",
    },
    # Recorded at commit 27d8c66 on an AVX-512 Xeon (the same code that gives the AVX2
    # pins above there; run twice, the same digests).
    "AVX512": {
        "digits-static": "6ebbf97be1a6bdec",
        "waves-adam-pretrained": "748848e0296f711e",
        "waves-adam-task-base": "347393b2d9d3d990",
        "conll-tiny-cosine": "7af76b7509429c7a",
    },
}
CAPABILITY = torch.backends.cpu.get_cpu_capability()


def test_every_capability_pins_the_same_cases():
    cases = {cap: sorted(pins) for cap, pins in PINS.items()}
    assert len({tuple(c) for c in cases.values()}) == 1, cases


@pytest.mark.skipif(not torch.__version__.startswith(PINNED_TORCH),
                    reason=f"pinned on torch {PINNED_TORCH}; other versions round differently")
@pytest.mark.skipif(CAPABILITY not in PINS,
                    reason=f"no pins for CPU capability {CAPABILITY}: to pin this machine, add "
                           f"PINS[{CAPABILITY!r}] with any values and copy the digests "
                           "its failures print")
@pytest.mark.parametrize("case", sorted(PINS["AVX2"]))
def test_pinned_episode_numbers_are_unchanged(case, tmp_path):
    res = _episode(case, tmp_path)
    assert digest(res) == PINS[CAPABILITY][case], json.dumps(
        {"case": case, "capability": CAPABILITY, "digest": digest(res),
         "final_val_loss": repr(res.val_loss[-1])})
