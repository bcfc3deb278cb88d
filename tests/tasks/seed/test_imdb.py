from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from sklearn.metrics import f1_score, precision_score, recall_score
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from torch.utils.data import TensorDataset

import lr_gym
from lr_gym.tasks.seed import imdb
from lr_gym.tasks.seed.data import DATA_DIR_ENV, DataNotFoundError

POS = ["a great movie", "wonderful acting<br />loved it", "excellent and fun", "good film"]
NEG = ["a boring movie", "awful acting<br />hated it", "terrible and dull", "bad film"]


def write_split(root, split: str, n: int) -> list[int]:
    import datasets

    labels = [i % 2 for i in range(n)]
    texts = [(POS if y else NEG)[i % 4] + f" number {i}" for i, y in enumerate(labels)]
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    (root / "imdb").mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features).to_parquet(
        str(root / "imdb" / f"{split}.parquet")
    )
    return labels


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_split(root, "train", 64)
    write_split(root, "test", 16)
    return root


@pytest.fixture(scope="module")
def tok_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_binary_metrics_hand_computed():
    m = imdb.binary_metrics(tp=3, fp=1, fn=2, tn=4)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))
    # No predicted positives: precision and F1 are 0 (sklearn's zero_division=0).
    assert imdb.binary_metrics(tp=0, fp=0, fn=5, tn=5) == {
        "accuracy": 0.5, "f1": 0.0, "precision": 0.0, "recall": 0.0
    }


class FixedLogits(torch.nn.Module):
    """Predicts the class stored in input_ids[:, 0] (a real, fixed classifier)."""

    def forward(self, input_ids, attention_mask):
        from types import SimpleNamespace

        logits = torch.nn.functional.one_hot(input_ids[:, 0], 2).float() * 3.0
        return SimpleNamespace(logits=logits)


def test_eval_fn_matches_sklearn():
    preds = torch.tensor([1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1])
    labels = torch.tensor([1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0])
    ids = torch.stack([preds, torch.zeros_like(preds)], 1)
    ds = TensorDataset(ids, torch.ones_like(ids), labels)
    task = imdb.imdb_bert_cpu(eval_batch_size=4)  # 3 batches, the last one partial
    m = imdb.sequence_classification_eval(FixedLogits(), ds, task, torch.device("cpu"))
    assert m["accuracy"] == pytest.approx((preds == labels).float().mean().item())
    assert m["f1"] == pytest.approx(f1_score(labels, preds))
    assert m["precision"] == pytest.approx(precision_score(labels, preds))
    assert m["recall"] == pytest.approx(recall_score(labels, preds))
    expected_loss = torch.nn.functional.cross_entropy(
        torch.nn.functional.one_hot(preds, 2).float() * 3.0, labels
    )
    assert m["loss"] == pytest.approx(expected_loss.item(), rel=1e-5)


def test_load_tokenizes_once_with_a_cached_wordpiece(data_root, tok_cache):
    data = imdb.load_imdb(
        str(data_root), max_length=16, vocab_size=200, val_size=16, tokenizer_cache=str(tok_cache)
    )
    ids, mask, y = data.train.tensors
    assert ids.shape == mask.shape == (48, 16) and len(data.val) == 16 and len(data.test) == 16
    files = list(tok_cache.glob("imdb-wordpiece-200/*.json"))
    assert len(files) == 1
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(files[0]))
    assert (ids[:, 0] == tok.token_to_id("[CLS]")).all()
    assert ((ids == tok.token_to_id("[PAD]")) == (mask == 0)).all()
    assert tok.token_to_id("<") is None  # <br /> was cleaned away before training
    # Validation comes from train with a fixed permutation; labels follow their texts.
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(data.val.tensors[2], (order[:16] % 2))
    assert torch.equal(y, order[16:] % 2)
    assert imdb.load_imdb(
        str(data_root), max_length=16, vocab_size=200, val_size=16, tokenizer_cache=str(tok_cache)
    ) is data
    # A second training run on the same texts reuses the cached file.
    texts = ["some text", "more text"]
    a = imdb.train_wordpiece(texts, 50, tok_cache)
    b = imdb.train_wordpiece(texts, 50, tok_cache)
    assert a.get_vocab() == b.get_vocab()
    assert len(list(tok_cache.glob("imdb-wordpiece-50/*.json"))) == 1


def test_clean_text():
    assert imdb.clean_text("good<br />bad<br/>ok") == "good bad ok"


def test_tiny_bert_trains_one_step(data_root, tok_cache):
    data = imdb.load_imdb(
        str(data_root), max_length=16, vocab_size=200, val_size=16, tokenizer_cache=str(tok_cache)
    )
    torch.manual_seed(0)
    model = imdb.tiny_bert(vocab_size=200, max_length=16, hidden_size=32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = tuple(t[:8] for t in data.train.tensors)
    loss = imdb.sequence_classification_loss(model, batch)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and 0.3 < loss.item() < 1.5


def tiny_kwargs(root, cache) -> dict:
    return {
        "data_dir": str(root),
        "val_size": 16,
        "max_length": 16,
        "vocab_size": 200,
        "hidden_size": 32,
        "batch_size": 8,
        "total_steps": 4,
        "steps_per_action": 2,
        "tokenizer_cache": str(cache),
    }


@pytest.mark.slow  # a dozen resets, each building a model
def test_env_checkers_pass(data_root, tok_cache):
    make = functools.partial(
        gym.make, "lr_gym/IMDB-BERT-CPU-v1", task_kwargs=tiny_kwargs(data_root, tok_cache)
    )
    gym_check_env(make().unwrapped, skip_render_check=True)
    sb3_check_env(make().unwrapped, warn=True)


def test_episode_reports_all_metrics(data_root, tok_cache):
    env = gym.make(
        "lr_gym/IMDB-BERT-CPU-v1", task_kwargs=tiny_kwargs(data_root, tok_cache)
    )
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        done = terminated or truncated
    assert {"val_f1", "val_precision", "val_recall", "val_accuracy"} <= set(info)
    assert set(info["test"]) == {"loss", "accuracy", "f1", "precision", "recall"}


def test_cpu_preset_plan():
    task = lr_gym.get_task("IMDB-BERT-CPU")
    assert task.optimizer is torch.optim.AdamW and task.lr == 1e-3
    assert (task.batch_size, task.total_steps, task.steps_per_action) == (32, 600, 40)
    assert task.data_fn.keywords["max_length"] == 128
    assert task.data_fn.keywords["model_name_or_path"] is None


def test_full_preset_carries_the_plan():
    task = lr_gym.get_task("lr_gym/IMDB-BERT-v1")
    assert task.optimizer is torch.optim.AdamW and task.lr == 2e-5
    assert task.batch_size == 32
    assert task.total_steps == 3 * ((25_000 - 2_500) // 32) == 2_109
    kw = task.data_fn.keywords
    assert kw["hub_name"] == "imdb" and kw["max_length"] == 256 and kw["val_size"] == 2_500
    assert kw["model_name_or_path"] == "bert-base-uncased"
    assert task.model_fn.args == ("bert-base-uncased",)


def test_full_preset_offline_names_the_data_dir_variable(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "ds")
    with pytest.raises(DataNotFoundError, match=DATA_DIR_ENV):
        imdb.imdb_bert_full().data_fn()


def save_tiny_pretrained(path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = sorted({w for t in POS + NEG for w in t.replace("<br />", " ").split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "number", *words]
    vocab += [str(i) for i in range(100)]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )
    BertForSequenceClassification(config).save_pretrained(path)


@pytest.mark.slow
def test_full_preset_runs_from_a_local_pretrained_dir(data_root, tmp_path):
    model_dir = tmp_path / "bert"
    save_tiny_pretrained(model_dir)
    task_kwargs = {
        "data_dir": str(data_root), "model_name_or_path": str(model_dir), "val_size": 16,
        "max_length": 32, "batch_size": 8, "total_steps": 2, "steps_per_action": 1,
    }
    env = gym.make("lr_gym/IMDB-BERT-v1", task_kwargs=task_kwargs)
    _, info = env.reset(seed=0)
    assert env.unwrapped.task.lr == 2e-5
    ids = env.unwrapped.data.train.tensors[0]
    assert ids.shape == (48, 32) and (ids[:, 0] == 2).all()  # [CLS] of the saved vocab
    assert (ids == 1).float().mean() < 0.05  # the checkpoint's vocab covers the texts
    for _ in range(2):
        _, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    assert terminated and not truncated and "f1" in info["test"]


# ------------------------------------------------------------------ MiniLM
def test_minilm_preset_plan():
    from lr_gym.tasks.seed.pretrained import PACKAGED_MINILM

    task = lr_gym.get_task("lr_gym/IMDB-MiniLM-CPU-v2")
    assert task.name == "imdb-minilm/cpu" and task.family == "imdb-minilm"
    assert task.optimizer is torch.optim.AdamW and task.lr == 5e-5
    assert (task.batch_size, task.total_steps, task.steps_per_action) == (16, 80, 10)
    assert task.data_fn.keywords["model_name_or_path"] == PACKAGED_MINILM
    assert task.model_fn.args == (PACKAGED_MINILM,)


def test_minilm_env_runs_on_a_tiny_bert_given_as_model_name_or_path(data_root, tmp_path):
    from tests.helpers import save_tiny_bert

    words = " ".join(POS + NEG).replace("<br />", " ").split() + ["number"]
    task_kwargs = {"data_dir": str(data_root), "val_size": 16, "max_length": 16,
                   "batch_size": 8, "total_steps": 4, "steps_per_action": 2,
                   "model_name_or_path": str(save_tiny_bert(tmp_path / "bert", words))}
    env = gym.make("lr_gym/IMDB-MiniLM-CPU-v2", task_kwargs=task_kwargs)
    env.reset(seed=0)
    ids = env.unwrapped.data.train.tensors[0]
    assert (ids[:, 0] == 2).all() and (ids == 1).float().mean() < 0.05  # its own vocabulary
    env.step(np.zeros(1, np.float32))
    *_, terminated, _, info = env.step(np.zeros(1, np.float32))
    assert terminated and {"accuracy", "f1"} <= set(info["test"])

