from __future__ import annotations

import math

import datasets
import gymnasium as gym
import numpy as np
import pytest
import torch

import lr_gym  # noqa: F401  (registers the ids)
from lr_gym.tasks.base import iterate_batches
from lr_gym.tasks.seed.conll import (
    HUB_NAME,
    PAD,
    TAG_NAMES,
    UNK,
    build_vocab,
    conll2003_bilstm_crf_cpu,
    conll2003_bilstm_crf_full,
    encode,
    entity_scores,
)
from lr_gym.tasks.seed.data import DATA_DIR_ENV, DataNotFoundError

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "tokens": datasets.List(datasets.Value("string")),
        "ner_tags": datasets.List(datasets.ClassLabel(names=list(TAG_NAMES))),
    }
)
T = {name: i for i, name in enumerate(TAG_NAMES)}
SENTENCES = [
    (["John", "Smith", "visited", "Paris", "."], ["B-PER", "I-PER", "O", "B-LOC", "O"]),
    (["Acme", "Corp", "hired", "Mary", "."], ["B-ORG", "I-ORG", "O", "B-PER", "O"]),
    (["The", "German", "team", "won", "in", "Berlin"], ["O", "B-MISC", "O", "O", "O", "B-LOC"]),
    (["Nothing", "here"], ["O", "O"]),
]


def _write(root, split: str, n: int) -> None:
    rows = {"id": [], "tokens": [], "ner_tags": []}
    for i in range(n):
        toks, tags = SENTENCES[i % len(SENTENCES)]
        rows["id"].append(str(i))
        rows["tokens"].append(toks)
        rows["ner_tags"].append([T[t] for t in tags])
    (root / "conll2003").mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=FEATURES).to_parquet(
        str(root / "conll2003" / f"{split}.parquet")
    )


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    _write(root, "train", 24)
    _write(root, "validation", 8)
    _write(root, "test", 12)
    return root


TINY = {"total_steps": 4, "steps_per_action": 2, "batch_size": 8, "emb_dim": 8, "hidden": 8,
        "val_size": 6}


# ------------------------------------------------------------------ metric
def test_entity_boundaries_iob2():
    # One gold PER spanning two tokens vs two one-token PERs: no entity matches.
    s = entity_scores([["B-PER", "I-PER"]], [["B-PER", "B-PER"]])
    assert s["precision"] == 0.0 and s["recall"] == 0.0 and s["f1"] == 0.0
    assert entity_scores([["B-PER", "I-PER"]], [["B-PER", "I-PER"]])["f1"] == 1.0


def test_type_mismatch_counts_as_wrong():
    s = entity_scores([["B-PER", "O", "B-LOC"]], [["B-ORG", "O", "B-LOC"]])
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5


def test_hand_computed_precision_recall():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "B-MISC", "O"], ["B-ORG", "I-ORG"]]
    # gold: PER(0-1), LOC(3), ORG(0); pred: PER(0-1) ok, MISC(2), ORG(0-1) wrong span.
    s = entity_scores(gold, pred)
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(1 / 3)


def test_default_mode_is_conlleval_strict_is_iob2():
    # An entity opened by I-PER: conlleval (seqeval default) accepts it, strict IOB2 does not.
    s = entity_scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])
    assert s["f1"] == 1.0 and s["f1_strict"] == 0.0


# ------------------------------------------------------------- vocabulary
def test_vocab_and_encoding():
    sents = [["EU", "rejects", "EU"], ["eu", "calls"]]
    vocab, single = build_vocab(sents)
    assert vocab["<pad>"] == PAD and vocab["<unk>"] == UNK and vocab["EU"] == 2
    assert single[vocab["rejects"]] and not single[vocab["EU"]]
    low, _ = build_vocab(sents, lowercase=True)
    assert "EU" not in low and low["eu"] == 2
    ds = encode([["EU", "Mars"], ["calls"]], [[3, 0], [0]], vocab)
    assert ds.tensors["words"].tolist() == [[vocab["EU"], UNK], [vocab["calls"], PAD]]
    assert ds.tensors["mask"].tolist() == [[1, 1], [1, 0]]
    batch = ds.__getitems__([1])
    assert batch["words"].shape == (1, 1)  # trimmed to the batch's longest sentence


# ------------------------------------------------------------------ tasks
def test_cpu_task_loads_steps_and_evaluates(data_dir):
    task = conll2003_bilstm_crf_cpu(data_dir=str(data_dir), **TINY)
    assert task.metric == "f1" and task.optimizer is torch.optim.Adam
    data = task.data_fn()
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 12)
    torch.manual_seed(0)
    model = task.model_fn()
    opt = task.build_optimizer(model)
    batch = next(iterate_batches(data.train, 8, collate_fn=task.collate_fn))
    loss = task.loss_fn(model, batch)
    loss.backward()
    opt.step()
    assert math.isfinite(loss.item()) and loss.item() > 0
    model.eval()
    with torch.no_grad():
        out = task.eval_fn(model, data.val, task, torch.device("cpu"))
        # Eval loss is the mean CRF NLL per sentence.
        full = data.val.__getitems__(list(range(len(data.val))))
        em = model.emissions(full["words"], full["mask"])
        nll = -model.crf(em, full["tags"], mask=full["mask"].bool(), reduction="sum").item()
    assert out["loss"] == pytest.approx(nll / len(data.val), rel=1e-5)
    assert {"f1", "precision", "recall", "f1_strict"} <= set(out)


@pytest.mark.slow
def test_model_fits_tiny_data(data_dir):
    task = conll2003_bilstm_crf_cpu(data_dir=str(data_dir), **{**TINY, "hidden": 32,
                                                               "emb_dim": 16})
    data = task.data_fn()
    torch.manual_seed(0)
    model = task.model_fn()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(40):
        for batch in iterate_batches(data.train, 8, collate_fn=task.collate_fn):
            opt.zero_grad()
            task.loss_fn(model, batch).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        assert task.eval_fn(model, data.test, task, torch.device("cpu"))["f1"] > 0.9


def test_check_env_gymnasium_and_sb3(data_dir):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("lr_gym/CoNLL2003-BiLSTMCRF-CPU-v1",
                   task_kwargs={"data_dir": str(data_dir), **TINY})
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    env.reset(seed=0)
    env.step(np.zeros(1, dtype=np.float32))
    *_, term, trunc, info = env.step(np.zeros(1, dtype=np.float32))
    assert term and not trunc and "f1" in info["test"]
    env.close()


def test_full_preset_plan_and_offline_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    task = conll2003_bilstm_crf_full()
    assert HUB_NAME == "conll2003"
    assert task.lr == 1e-3 and task.batch_size == 64 and task.optimizer is torch.optim.Adam
    assert task.total_steps == 10 * (14_041 // 64)  # the env drops partial batches
    with pytest.raises(DataNotFoundError, match=DATA_DIR_ENV):
        task.data_fn()


def test_full_preset_validates_on_the_whole_dev_split(data_dir):
    task = conll2003_bilstm_crf_full(data_dir=str(data_dir), total_steps=4, steps_per_action=2)
    data = task.data_fn()
    assert len(data.val) == 8 and len(data.test) == 12


def test_data_dir_env_var_change_is_not_masked_by_the_cache(tmp_path, monkeypatch):
    # The loader is cached per process: its key must be the folder actually read.
    a, b = tmp_path / "a", tmp_path / "b"
    for root, n_train in ((a, 24), (b, 16)):
        _write(root, "train", n_train)
        _write(root, "validation", 8)
        _write(root, "test", 12)
    monkeypatch.setenv(DATA_DIR_ENV, str(a))
    task = conll2003_bilstm_crf_cpu(**TINY)  # no data_dir: the variable decides
    assert len(task.data_fn().train) == 24
    monkeypatch.setenv(DATA_DIR_ENV, str(b))
    assert len(task.data_fn().train) == 16


def test_preset_names_options_and_budgets():
    task = conll2003_bilstm_crf_cpu()
    assert task.name == "conll2003-bilstm-crf/cpu" and task.family == "conll2003-bilstm-crf"
    assert (task.total_steps, task.steps_per_action) == (4 * (14_041 // 64), 50)
    with pytest.raises(TypeError, match="no option 'lrr'.*valid options:.*lr,"):
        conll2003_bilstm_crf_cpu(lrr=0.1)
