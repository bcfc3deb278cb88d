"""CoNLL-2003 English NER with a BiLSTM-CRF (seed task).

Model (both presets): word embeddings (100-d, trained from scratch) -> dropout 0.5
-> one bidirectional LSTM layer with hidden size 200 in total (100 per direction, as
in Lample et al. 2016) -> dropout -> linear emissions -> ``torchcrf.CRF``. The
vocabulary is every word of the training split (min frequency 1) plus ``<pad>`` (0)
and ``<unk>`` (1); words are kept cased by default (``lowercase=True`` folds them,
losing the capitalisation cue, which this model has no character features to
recover). So that ``<unk>`` is trained, words seen once in training are replaced by
``<unk>`` with probability 0.5 during training (Lample et al.'s singleton trick).
Optimizer: Adam, lr 0.001, batch 64, gradient-norm clip 5.

Loss: CRF negative log-likelihood, mean per sentence (training and ``"loss"`` in
evaluation). Metrics (seqeval, entity level, tags are IOB2): ``"f1"`` (main),
``"precision"``, ``"recall"`` in seqeval's default conlleval-compatible mode (an
``I-X`` after ``O`` opens an entity, as conlleval does), plus ``"f1_strict"``
(``mode="strict", scheme=IOB2``: such ill-formed entities count as wrong). All on
the 0-1 scale.

Presets (:class:`~lr_gym.tasks.seed.common.Preset` values of :func:`conll_task`; an
epoch is ``14,041 // 64 = 219`` steps, as for every seed task the env drops the last
partial batch):

``conll2003-bilstm-crf/full`` (``lr_gym/CoNLL2003-BiLSTMCRF-v1``):
    Hub ``conll2003`` (or local files): train 14,041 sentences, validation = the
    official dev split (3,250, never used as test), test = the official test split
    (3,453) at episode end. 10 epochs -> 2,190 steps, 50 steps per action.

``conll2003-bilstm-crf/cpu`` (``lr_gym/CoNLL2003-BiLSTMCRF-CPU-v1``):
    The same model and data (local ``conll2003/{train,validation,test}.parquet``,
    which match the official splits), 4 epochs -> 876 steps, 50 steps per action,
    validated on a fixed 1,000-sentence subset of the dev split (seeded) to keep
    each interval cheap; test = the full test split.
    Measured here (2 CPU cores shared with other jobs, load average 4-9, one torch
    thread; static LR, seed 0, ``/work/shared/data``): 18 env steps, 529 s wall,
    28.8 s per env step on average (about 17 s late in the run at load ~4; reset
    with data loading 26 s). Final validation F1 0.612 (1,000 dev sentences); test
    F1 0.558 (precision 0.736, recall 0.450, loss 3.90). The budget underfits on
    purpose: the F1 curve is still rising, so LR control has room. Unloaded, the
    brief's ~0.03 s per optimizer step would make an episode well under a minute of
    training plus evaluations; raise ``epochs`` via ``task_kwargs`` if wanted.
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lr_gym.tasks.base import Task, TaskData, iterate_batches, move_to
from lr_gym.tasks.seed.batching import DictDataset, dict_collate
from lr_gym.tasks.seed.common import Preset, load_with_data_dir, seed_task
from lr_gym.tasks.seed.data import load_split

HF_COLUMNS = {"tokens": "list[str]", "ner_tags": "list[int] (conll2003 ClassLabel ids)"}
"""The HF ``conll2003`` columns this task reads."""

HUB_NAME = "conll2003"
TAG_NAMES: tuple[str, ...] = (
    "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC",
)
CONLL_TRAIN_SENTENCES = 14_041
PAD, UNK = 0, 1


# ----------------------------------------------------------------------- metric
def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level seqeval scores (0-1) of IOB2 tag sequences.

    Returns:
        ``precision``, ``recall``, ``f1`` (default conlleval-compatible mode) and
        ``f1_strict`` (``mode="strict", scheme=IOB2``).
    """
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    return {
        "precision": float(precision_score(gold, pred, zero_division=0)),
        "recall": float(recall_score(gold, pred, zero_division=0)),
        "f1": float(f1_score(gold, pred, zero_division=0)),
        "f1_strict": float(
            f1_score(gold, pred, mode="strict", scheme=IOB2, zero_division=0)
        ),
    }


# ------------------------------------------------------------------------ model
class BiLSTMCRF(nn.Module):
    """Word embeddings -> BiLSTM -> linear emissions -> CRF.

    Args:
        vocab_size: Words including ``<pad>`` and ``<unk>``.
        num_tags: Tag set size.
        emb_dim: Word embedding size.
        hidden: BiLSTM output size (both directions together).
        dropout: Dropout on embeddings and LSTM outputs.
        singletons: Optional ``(vocab_size,)`` bool mask of words seen once in training.
        word_dropout: Probability of replacing a singleton by ``<unk>`` in training.
    """

    def __init__(
        self,
        vocab_size: int,
        num_tags: int,
        *,
        emb_dim: int = 100,
        hidden: int = 200,
        dropout: float = 0.5,
        singletons: torch.Tensor | None = None,
        word_dropout: float = 0.5,
    ) -> None:
        from torchcrf import CRF

        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(emb_dim, hidden // 2, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(2 * (hidden // 2), num_tags)
        self.crf = CRF(num_tags, batch_first=True)
        if singletons is None:
            singletons = torch.zeros(vocab_size, dtype=torch.bool)
        self.register_buffer("singletons", singletons, persistent=False)
        self.word_dropout = word_dropout

    def emissions(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-token tag scores ``(B, L, num_tags)``."""
        if self.training and self.word_dropout > 0:
            drop = self.singletons[words] & (torch.rand_like(words, dtype=torch.float)
                                             < self.word_dropout)
            words = words.masked_fill(drop, UNK)
        x = self.dropout(self.embed(words))
        lengths = mask.sum(1).cpu()  # packing needs CPU lengths (one sync per batch)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=words.shape[1]
        )
        return self.proj(self.dropout(out))

    def forward(
        self, words: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean CRF negative log-likelihood per sentence."""
        em = self.emissions(words, mask)
        return -self.crf(em, tags, mask=mask.bool(), reduction="mean")


def crf_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """CRF negative log-likelihood, mean per sentence."""
    return model(batch["words"], batch["tags"], batch["mask"])


def crf_eval(
    model: nn.Module, dataset: DictDataset, task: Task, device: torch.device
) -> dict[str, float]:
    """Mean CRF NLL per sentence and seqeval entity scores of Viterbi decodes."""
    total = torch.zeros((), device=device)
    gold: list[list[str]] = []
    pred: list[list[str]] = []
    for batch in iterate_batches(
        dataset, task.eval_batch_size, shuffle=False, collate_fn=task.collate_fn
    ):
        lengths = batch["mask"].sum(1).tolist()
        tags = batch["tags"].tolist()
        batch = move_to(batch, device)
        mask = batch["mask"].bool()
        em = model.emissions(batch["words"], batch["mask"])
        total += -model.crf(em, batch["tags"], mask=mask, reduction="sum")
        for n, g, p in zip(lengths, tags, model.crf.decode(em, mask=mask), strict=True):
            gold.append([TAG_NAMES[t] for t in g[:n]])
            pred.append([TAG_NAMES[t] for t in p])
    scores = entity_scores(gold, pred)
    scores["loss"] = total.item() / len(dataset)
    return scores


# ------------------------------------------------------------------------- data
@dataclass(frozen=True)
class ConllData:
    """Vocabulary and splits of one CoNLL preset (cached per process)."""

    vocab: dict[str, int]
    singletons: torch.Tensor
    data: TaskData


def build_vocab(
    sentences: Sequence[Sequence[str]], lowercase: bool = False
) -> tuple[dict[str, int], torch.Tensor]:
    """Word -> id over ``sentences`` (min frequency 1), and the singleton mask."""
    counts = collections.Counter(
        w.lower() if lowercase else w for s in sentences for w in s
    )
    vocab = {"<pad>": PAD, "<unk>": UNK}
    for w in sorted(counts, key=lambda w: (-counts[w], w)):
        vocab[w] = len(vocab)
    singletons = torch.zeros(len(vocab), dtype=torch.bool)
    singletons[[vocab[w] for w, c in counts.items() if c == 1]] = True
    return vocab, singletons


def encode(
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[int]],
    vocab: dict[str, int],
    lowercase: bool = False,
) -> DictDataset:
    """Padded ``words``/``tags``/``mask`` tensors (empty sentences are dropped)."""
    keep = [i for i, s in enumerate(sentences) if len(s) > 0]
    longest = max((len(sentences[i]) for i in keep), default=1)
    words = torch.zeros(len(keep), longest, dtype=torch.long)
    tag_t = torch.zeros(len(keep), longest, dtype=torch.long)
    mask = torch.zeros(len(keep), longest, dtype=torch.long)
    for row, i in enumerate(keep):
        s = sentences[i]
        n = len(s)
        words[row, :n] = torch.tensor(
            [vocab.get(w.lower() if lowercase else w, UNK) for w in s]
        )
        tag_t[row, :n] = torch.as_tensor(tags[i])
        mask[row, :n] = 1
    return DictDataset({"words": words, "tags": tag_t, "mask": mask}, length_key="mask")


def _columns(ds: Any, limit: int | None) -> tuple[list[list[str]], list[list[int]]]:
    names = getattr(getattr(ds, "features", {}).get("ner_tags", None), "feature", None)
    if names is not None and tuple(getattr(names, "names", TAG_NAMES)) != TAG_NAMES:
        raise ValueError(
            f"Unexpected CoNLL tag names {names.names}; expected {list(TAG_NAMES)}."
        )
    n = len(ds) if limit is None else min(limit, len(ds))
    ds = ds.select(range(n)) if n < len(ds) else ds
    return [list(t) for t in ds["tokens"]], [list(t) for t in ds["ner_tags"]]


@functools.cache
def load_conll(
    data_dir: str | None,
    *,
    lowercase: bool = False,
    max_train_examples: int | None = None,
    val_size: int | None = None,
    max_eval_examples: int | None = None,
) -> ConllData:
    """Train/validation/test of CoNLL-2003 (local files or hub), encoded.

    ``val_size`` keeps a seeded random subset of the dev split for per-interval
    validation (None: all of it).
    """
    def split(name: str, limit: int | None) -> tuple[list[list[str]], list[list[int]]]:
        return _columns(load_split("conll2003", name, hub_name=HUB_NAME, data_dir_=data_dir,
                                   columns=HF_COLUMNS),
                        limit)

    train_s, train_t = split("train", max_train_examples)
    val_s, val_t = split("validation", None)
    test_s, test_t = split("test", max_eval_examples)
    if val_size is not None and val_size < len(val_s):
        idx = np.sort(np.random.default_rng(0).permutation(len(val_s))[:val_size])
        val_s, val_t = [val_s[i] for i in idx], [val_t[i] for i in idx]
    if max_eval_examples is not None:
        val_s, val_t = val_s[:max_eval_examples], val_t[:max_eval_examples]
    vocab, singletons = build_vocab(train_s, lowercase)
    enc = functools.partial(encode, vocab=vocab, lowercase=lowercase)
    return ConllData(
        vocab,
        singletons,
        TaskData(train=enc(train_s, train_t), val=enc(val_s, val_t), test=enc(test_s, test_t)),
    )


# ---------------------------------------------------------------------- builder
def conll_task(
    *,
    name: str,
    data_dir: str | os.PathLike | None = None,
    lowercase: bool = False,
    lr: float = 1e-3,
    batch_size: int = 64,
    eval_batch_size: int = 512,
    epochs: float = 10.0,
    total_steps: int | None = None,
    steps_per_action: int | None = 50,
    val_size: int | None = None,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    emb_dim: int = 100,
    hidden: int = 200,
    dropout: float = 0.5,
    word_dropout: float = 0.5,
    description: str = "",
) -> Task:
    """A CoNLL-2003 BiLSTM-CRF task (nothing is loaded until ``data_fn``/``model_fn``).

    Args:
        name: Task name, ``conll2003-bilstm-crf/<preset>`` (its family is the part
            before the slash).
        data_dir: Local data folder (``conll2003/{train,validation,test}.parquet``);
            else ``$LR_GYM_DATA_DIR``, else the HF hub.
        lowercase: Fold words to lowercase for the vocabulary.
        lr: Adam ``lr0``.
        batch_size: Sentences per training batch.
        eval_batch_size: Sentences per evaluation batch.
        epochs: Epochs that set ``total_steps`` when it is not given.
        total_steps: Episode budget (overrides ``epochs``).
        steps_per_action: Optimizer steps per env step (None: one epoch).
        val_size: Seeded subset of the dev split for validation (None: all).
        max_train_examples: Cap on training sentences.
        max_eval_examples: Cap on validation and test sentences.
        emb_dim: Word embedding size.
        hidden: BiLSTM size, both directions together.
        dropout: Dropout on embeddings and LSTM outputs.
        word_dropout: Probability of replacing training singletons by ``<unk>``.
        description: One-line description.
    """
    data = functools.partial(
        load_with_data_dir, load_conll, data_dir, lowercase=lowercase,
        max_train_examples=max_train_examples, val_size=val_size,
        max_eval_examples=max_eval_examples,
    )

    def model() -> nn.Module:
        d = data()  # the vocabulary comes from the training split
        return BiLSTMCRF(
            len(d.vocab), len(TAG_NAMES), emb_dim=emb_dim, hidden=hidden, dropout=dropout,
            singletons=d.singletons, word_dropout=word_dropout,
        )

    # Validation is the official dev split, so none is held out of training.
    return seed_task(
        name, description,
        dict(n_train_source=CONLL_TRAIN_SENTENCES, val_size=0, batch_size=batch_size,
             epochs=epochs, total_steps=total_steps, steps_per_action=steps_per_action,
             max_train_examples=max_train_examples),
        model_fn=model,
        data_fn=lambda: data().data,
        lr=lr,
        optimizer=torch.optim.Adam,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        loss_fn=crf_loss,
        eval_fn=crf_eval,
        metric="f1",
        collate_fn=dict_collate,
        grad_clip=5.0,
    )


# ---------------------------------------------------------------------- presets
conll2003_bilstm_crf_full = Preset(
    "conll2003-bilstm-crf/full",
    conll_task,
    dict(
        lr=1e-3,
        batch_size=64,
        epochs=10.0,
        steps_per_action=50,
        val_size=None,
        description="CoNLL-2003 NER, BiLSTM-CRF, Adam lr0 1e-3, batch 64, 10 epochs",
    ),
)
"""``conll2003-bilstm-crf/full``: hub CoNLL-2003, 10 epochs, validated on the whole dev split."""

conll2003_bilstm_crf_cpu = Preset(
    "conll2003-bilstm-crf/cpu",
    conll_task,
    dict(
        lr=1e-3,
        batch_size=64,
        epochs=4.0,
        steps_per_action=50,
        val_size=1000,
        description="CoNLL-2003 NER, BiLSTM-CRF, Adam lr0 1e-3, batch 64, 4 epochs, "
                    "1,000 dev sentences",
    ),
)
"""``conll2003-bilstm-crf/cpu``: the same model and data, 4 epochs, 1,000 validation sentences."""
