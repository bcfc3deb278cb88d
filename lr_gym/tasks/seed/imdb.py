"""Seed task: IMDB sentiment classification with a BERT-family sequence classifier.

Three presets (:class:`~lr_gym.tasks.seed.common.Preset` values of :func:`imdb_task`):
``imdb-bert/full`` registered as ``lr_gym/IMDB-BERT-v1``, ``imdb-bert/cpu`` as
``lr_gym/IMDB-BERT-CPU-v1`` and ``imdb-minilm/cpu`` as ``lr_gym/IMDB-MiniLM-CPU-v2``.
Data goes through :func:`lr_gym.tasks.seed.data.load_split` (``$LR_GYM_DATA_DIR`` or
``data_dir=`` for local ``imdb/{train,test}.parquet`` in the HF schema: ``text``,
``label`` ClassLabel neg/pos; the HF hub ``imdb`` otherwise). HTML line breaks
(``<br />``) are replaced by spaces; texts are tokenized once into ``(input_ids,
attention_mask, label)`` tensors padded to ``max_length``.

``imdb-bert/full`` (GPU):
    ``AutoModelForSequenceClassification.from_pretrained("bert-base-uncased",
    num_labels=2)`` and its tokenizer. Hub ``imdb``: 22,500 train reviews, 2,500
    validation reviews held out from train (fixed permutation, seed 0), the 25,000
    test reviews evaluated once at the end. Reviews are truncated to 256 tokens (the
    median review is ~230 words, ~300 tokens; 256 keeps most of the signal at a
    quarter of the attention cost of 512). AdamW lr0 2e-5, weight decay 0.01, batch
    32, 3 epochs = 3 * 703 = 2,109 steps, 70 steps (a tenth of an epoch) per env step,
    so 31 env steps. The linear decay of the usual recipe is the env's base schedule
    (``schedule="linear"``), not the task's.

``imdb-bert/cpu`` (2 CPU cores, a few minutes per episode):
    A tiny BERT built from ``BertConfig`` (2 layers, hidden 128, 2 heads, FFN 512,
    randomly initialised) with a WordPiece tokenizer (lower-cased, 8,000 tokens)
    trained with ``tokenizers`` on the training reviews and cached under
    ``$LR_GYM_CACHE_DIR`` (default ``~/.cache/lr_gym``), keyed by a hash of the texts.
    Local subset: 9,500 train, 500 validation held out from train, the 4,000 local
    test reviews at the end. Max length 128, AdamW lr0 1e-3 (a from-scratch model
    needs a much larger LR than fine-tuning), weight decay 0.01, batch 32, 600 steps
    (2 epochs), 40 steps per env step, so 15 env steps.

``imdb-minilm/cpu`` (2 CPU cores; about 4 minutes per episode):
    Fine-tunes a real pretrained encoder, offline: all-MiniLM-L6-v2 (BERT
    architecture, 6 layers, hidden 384, 22.7M parameters; the ``pretrained`` extra,
    see :mod:`lr_gym.tasks.seed.pretrained`) with its own uncased WordPiece tokenizer and a
    fresh classification head (initialised from the env's seed). Another checkpoint:
    ``task_kwargs={"model_name_or_path": <folder or hub id>}`` or
    ``$LR_GYM_MINILM_PATH``. The local subset of ``imdb-bert/cpu``, with 200
    validation reviews held out from train and a fixed 1,000 of the local test
    reviews. Max length 128 (the start of each review), AdamW lr0 5e-5 (the low end of
    the 5e-5 to 1e-4 usually used to fine-tune MiniLM: a sentence classifier needs
    little movement), weight decay 0.01, grad clip 1.0, batch 16, 80 steps (1,280
    reviews), 10 steps per env step, so 8 env steps. Sized from what one step costs
    on 2 idle cores, measured: about 1.7 s per batch-16 training step and 31 ms per
    review evaluated, so about 2.2 min of training, 9 validation passes (about 6 s
    each) and one test pass (about 30 s). v1 (batch 32, 240 steps, 500 validation and
    4,000 test reviews) was sized from an assumed 1.5 s per batch-32 step; a batch-32
    step takes about 3 s, and its episode measured 1,477 s. Its baseline is Hugging
    Face's recipe, linear warmup over 10% of the budget then linear decay to 0:
    ``agents.baselines`` ``warmup_linear``, i.e. ``gym.make(id, mode="anchored",
    schedule="linear", warmup_frac=0.1, lr_min=0)`` with action 0 (a bare ``gym.make``
    keeps the env's default constant LR, as every id). Measured:
    ``benchmarks/results/seed_experiment/cpu/report.md`` (its ``warmup_linear`` rows).

Metrics (validation and test): ``loss``, ``accuracy`` (the main metric), and
``f1``/``precision``/``recall`` of the positive class.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from lr_gym.files import atomic_write
from lr_gym.tasks.base import Batch, Task, TaskData, iterate_batches, move_to
from lr_gym.tasks.seed.common import (
    Preset,
    cache_dir,
    content_key,
    fixed_subset,
    holdout_indices,
    load_with_data_dir,
    seed_task,
)
from lr_gym.tasks.seed.data import load_split
from lr_gym.tasks.seed.pretrained import PACKAGED_MINILM, resolve_model

HF_COLUMNS = {"text": "string", "label": "int 0 (negative) or 1 (positive)"}
"""The HF ``imdb`` columns this task reads."""

HUB_TRAIN_SIZE = 25_000
"""Rows of the hub ``imdb`` train split (total_steps is derived from it)."""
LOCAL_TRAIN_SIZE = 10_000
"""Rows of the local subset's train split."""
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def clean_text(text: str) -> str:
    """Replaces IMDB's HTML line breaks by spaces."""
    return text.replace("<br />", " ").replace("<br/>", " ")


def train_wordpiece(texts: Sequence[str], vocab_size: int, cache: Path):  # noqa: ANN201
    """Trains (or loads from ``cache``) a lower-cased BERT-style WordPiece tokenizer.

    The file, ``<cache>/imdb-wordpiece-<vocab_size>/<key>.json``, is keyed by
    :func:`~lr_gym.tasks.seed.common.content_key` of the texts, so the same training
    data always gets the same tokenizer without retraining.

    Returns:
        A ``tokenizers.Tokenizer`` that adds ``[CLS] ... [SEP]``.
    """
    import tokenizers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    key = content_key(texts, vocab_size, tokenizers.__version__)
    path = cache / f"imdb-wordpiece-{vocab_size}" / f"{key}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        texts,
        trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS)),
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    atomic_write(path, lambda tmp: tok.save(str(tmp)))
    return tok


def encode_wordpiece(tok, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, ...]:  # noqa: ANN001
    """Encodes texts with a ``tokenizers.Tokenizer`` into padded id and mask tensors."""
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]", length=max_length)
    enc = tok.encode_batch(list(texts))
    ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
    return ids, mask


def encode_pretrained(
    model_name_or_path: str, texts: Sequence[str], max_length: int
) -> tuple[torch.Tensor, ...]:
    """Encodes texts with the checkpoint's own tokenizer (``AutoTokenizer``)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_name_or_path)
    enc = tok(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding="max_length",
        return_tensors="pt",
    )
    return enc["input_ids"], enc["attention_mask"]


@functools.cache
def load_imdb(
    data_dir: str | None,
    hub_name: str = "imdb",
    model_name_or_path: str | None = None,
    max_length: int = 128,
    vocab_size: int = 8_000,
    val_size: int = 2_500,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    tokenizer_cache: str | None = None,
    split_seed: int = 0,
) -> TaskData:
    """Loads, splits and tokenizes IMDB (cached per process and arguments).

    Args:
        data_dir: Local data directory, or None for ``$LR_GYM_DATA_DIR``/the hub.
        hub_name: HF hub dataset name.
        model_name_or_path: Checkpoint whose tokenizer to use; None trains a WordPiece
            tokenizer on the training reviews.
        max_length: Tokens per review (truncated and padded).
        vocab_size: WordPiece vocabulary size (local tokenizer only).
        val_size: Training reviews held out as the validation split.
        max_train_examples: Keep at most this many training reviews (after the split).
        max_test_examples: Keep at most this many test reviews (a fixed random subset:
            the splits are sorted by label).
        tokenizer_cache: Folder of trained tokenizers (see
            :func:`~lr_gym.tasks.seed.common.cache_dir`).
        split_seed: Seed of the train/validation permutation and test subset.
    """
    train = load_split("imdb", "train", hub_name=hub_name, data_dir_=data_dir,
                       columns=HF_COLUMNS)
    test = load_split("imdb", "test", hub_name=hub_name, data_dir_=data_dir,
                      columns=HF_COLUMNS)
    for ds in (train, test):
        if not {"text", "label"} <= set(ds.column_names):
            raise KeyError(f"IMDB data needs 'text' and 'label' columns, got {ds.column_names}.")
    texts = [clean_text(t) for t in train["text"]]
    labels = torch.as_tensor(np.asarray(train["label"]), dtype=torch.long)
    train_idx, val_idx = (
        i.tolist() for i in holdout_indices(len(texts), val_size, split_seed, max_train_examples)
    )
    test_texts = [clean_text(t) for t in test["text"]]
    test_labels = torch.as_tensor(np.asarray(test["label"]), dtype=torch.long)
    test_idx = fixed_subset(len(test_texts), max_test_examples, split_seed + 1)

    train_texts = [texts[i] for i in train_idx]
    if model_name_or_path is None:
        tok = train_wordpiece(train_texts, vocab_size, cache_dir(tokenizer_cache))

        def encode(xs: Sequence[str]) -> tuple[torch.Tensor, ...]:
            return encode_wordpiece(tok, xs, max_length)
    else:

        def encode(xs: Sequence[str]) -> tuple[torch.Tensor, ...]:
            return encode_pretrained(model_name_or_path, xs, max_length)

    def split(xs: list[str], ys: torch.Tensor) -> TensorDataset:
        return TensorDataset(*encode(xs), ys)

    return TaskData(
        train=split(train_texts, labels[train_idx]),
        val=split([texts[i] for i in val_idx], labels[val_idx]),
        test=split([test_texts[i] for i in test_idx], test_labels[test_idx]),
    )


def tiny_bert(
    vocab_size: int = 8_000,
    max_length: int = 128,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    num_labels: int = 2,
) -> nn.Module:
    """A randomly initialised small ``BertForSequenceClassification``."""
    from transformers import AutoModelForSequenceClassification, BertConfig

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=max_length,
        num_labels=num_labels,
    )
    return AutoModelForSequenceClassification.from_config(config)


def pretrained_classifier(model_name_or_path: str, num_labels: int = 2) -> nn.Module:
    """A pretrained encoder with a fresh classification head (seeded by the env).

    ``model_name_or_path`` goes through :func:`~lr_gym.tasks.seed.pretrained.resolve_model`
    (the packaged MiniLM placeholder becomes its folder).
    """
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        resolve_model(model_name_or_path), num_labels=num_labels
    )


def sequence_classification_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Cross-entropy of a HF sequence classifier on ``(ids, mask, labels)``."""
    ids, mask, y = batch
    logits = model(input_ids=ids, attention_mask=mask).logits
    return nn.functional.cross_entropy(logits, y)


def binary_metrics(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Accuracy and positive-class F1, precision and recall from confusion counts.

    An undefined ratio (no predicted or no actual positives) counts as 0, as in
    scikit-learn's ``zero_division=0``.
    """
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "f1": f1,
        "precision": precision,
        "recall": recall,
    }


def sequence_classification_eval(
    model: nn.Module, dataset: Dataset, task: Task, device: torch.device
) -> dict[str, float]:
    """Mean cross-entropy, accuracy and positive-class F1/precision/recall."""
    total_loss = torch.zeros((), device=device)
    counts = torch.zeros(4, device=device, dtype=torch.long)  # tp, fp, fn, tn
    n = 0
    for batch in iterate_batches(dataset, task.eval_batch_size, shuffle=False):
        ids, mask, y = move_to(batch, device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        total_loss += nn.functional.cross_entropy(logits, y, reduction="sum")
        pred, pos = logits.argmax(-1) == 1, y == 1
        counts += torch.stack(
            [(pred & pos).sum(), (pred & ~pos).sum(), (~pred & pos).sum(), (~pred & ~pos).sum()]
        )
        n += len(y)
    tp, fp, fn, tn = counts.tolist()  # one host sync for the whole pass
    return {"loss": total_loss.item() / n, **binary_metrics(tp, fp, fn, tn)}


def imdb_task(
    *,
    name: str,
    n_train_source: int,
    data_dir: str | os.PathLike | None = None,
    hub_name: str = "imdb",
    model_name_or_path: str | None = None,
    max_length: int = 128,
    vocab_size: int = 8_000,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    batch_size: int = 32,
    eval_batch_size: int = 256,
    epochs: float = 2,
    total_steps: int | None = None,
    steps_per_action: int | None = None,
    val_size: int = 500,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    tokenizer_cache: str | os.PathLike | None = None,
    grad_clip: float | None = 1.0,
    description: str = "",
) -> Task:
    """An IMDB BERT task (nothing is loaded until ``data_fn``/``model_fn``).

    Args:
        name: Task name, ``imdb-<model>/<preset>`` (its family is the part before the
            slash).
        n_train_source: Rows of the source train split, so ``epochs`` converts to steps
            without loading anything.
        data_dir: Local data directory (else ``$LR_GYM_DATA_DIR``, else the hub).
        hub_name: HF hub dataset name.
        model_name_or_path: Pretrained checkpoint (hub name, local folder, or
            :data:`~lr_gym.tasks.seed.pretrained.PACKAGED_MINILM`) for ``from_pretrained``,
            whose own tokenizer is used; None builds the tiny BERT with a local tokenizer.
        max_length: Tokens per review.
        vocab_size: Local WordPiece vocabulary size (tiny BERT only).
        hidden_size: Tiny BERT width.
        num_layers: Tiny BERT layers.
        num_heads: Tiny BERT attention heads.
        lr: Initial learning rate of AdamW.
        weight_decay: AdamW weight decay.
        batch_size: Training batch size.
        eval_batch_size: Validation/test batch size.
        epochs: Budget in epochs, used when ``total_steps`` is None.
        total_steps: Budget in optimizer steps (overrides ``epochs``).
        steps_per_action: Optimizer steps per env step; default a tenth of an epoch.
        val_size: Training reviews held out for validation.
        max_train_examples: Cap on training reviews (tests, quick runs).
        max_test_examples: Cap on test reviews.
        tokenizer_cache: Folder for trained tokenizers (default: see
            :func:`~lr_gym.tasks.seed.common.cache_dir`).
        grad_clip: Max gradient norm (BERT fine-tuning clips at 1.0).
        description: One-line description.
    """
    return seed_task(
        name, description,
        dict(n_train_source=n_train_source, val_size=val_size, batch_size=batch_size,
             epochs=epochs, total_steps=total_steps, steps_per_action=steps_per_action,
             max_train_examples=max_train_examples, actions_per_epoch=10),
        model_fn=_imdb_model_fn(model_name_or_path, vocab_size, max_length, hidden_size,
                                num_layers, num_heads),
        data_fn=functools.partial(
            load_with_data_dir, load_imdb, data_dir, hub_name=hub_name,
            model_name_or_path=model_name_or_path, max_length=max_length,
            vocab_size=vocab_size, val_size=val_size, max_train_examples=max_train_examples,
            max_test_examples=max_test_examples, tokenizer_cache=tokenizer_cache,
        ),
        lr=lr, optimizer=torch.optim.AdamW, optimizer_kwargs={"weight_decay": weight_decay},
        batch_size=batch_size, eval_batch_size=eval_batch_size,
        loss_fn=sequence_classification_loss,
        eval_fn=sequence_classification_eval,
        metric="accuracy",
        grad_clip=grad_clip,
    )


def _imdb_model_fn(model_name_or_path: str | None, vocab_size: int, max_length: int,
                   hidden_size: int, num_layers: int, num_heads: int) -> Callable[[], nn.Module]:
    """The task's model constructor: a pretrained classifier, or the tiny BERT.

    Args:
        model_name_or_path: Pretrained checkpoint, or None for the tiny BERT.
        vocab_size: Local WordPiece vocabulary size (tiny BERT only).
        max_length: Tokens per review.
        hidden_size: Tiny BERT width.
        num_layers: Tiny BERT layers.
        num_heads: Tiny BERT attention heads.

    Returns:
        A function building a fresh model.
    """
    if model_name_or_path is None:
        return functools.partial(
            tiny_bert, vocab_size, max_length, hidden_size, num_layers, num_heads
        )
    return functools.partial(pretrained_classifier, str(model_name_or_path))


imdb_bert_full = Preset(
    "imdb-bert/full",
    imdb_task,
    dict(
        n_train_source=HUB_TRAIN_SIZE,
        model_name_or_path="bert-base-uncased",
        max_length=256,
        lr=2e-5,
        batch_size=32,
        eval_batch_size=128,
        epochs=3,
        val_size=2_500,
        description="bert-base-uncased on IMDB, AdamW lr0 2e-5, batch 32, 3 epochs, 256 tokens",
    ),
)
"""``imdb-bert/full``: hub IMDB, bert-base-uncased, AdamW 2e-5, batch 32, 3 epochs, 256 tokens."""

imdb_bert_cpu = Preset(
    "imdb-bert/cpu",
    imdb_task,
    dict(
        n_train_source=LOCAL_TRAIN_SIZE,
        model_name_or_path=None,
        max_length=128,
        lr=1e-3,
        batch_size=32,
        total_steps=600,
        steps_per_action=40,
        val_size=500,
        description="Tiny BERT (2x128) on a 10k-review IMDB subset, AdamW lr0 1e-3, 600 steps",
    ),
)
"""``imdb-bert/cpu``: local 10k/4k IMDB subset, tiny BERT from scratch, AdamW 1e-3, 600 steps."""

imdb_minilm_cpu = Preset(
    "imdb-minilm/cpu",
    imdb_task,
    dict(  # the data and splits of imdb-bert/cpu; a fine-tuning LR and budget
        imdb_bert_cpu.defaults,
        model_name_or_path=PACKAGED_MINILM,
        lr=5e-5,
        batch_size=16,
        eval_batch_size=128,
        total_steps=80,
        steps_per_action=10,
        val_size=200,
        max_test_examples=1_000,
        description="all-MiniLM-L6-v2 fine-tuned on a 10k-review IMDB subset, AdamW lr0 5e-5, "
                    "batch 16, 128 tokens, 80 steps",
    ),
)
"""``imdb-minilm/cpu``: the packaged pretrained MiniLM fine-tuned (see the module docstring)."""
