"""SQuAD v2 data: article splits, sliding windows and span predictions."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from lr_gym.tasks.seed.batching import DictDataset
from lr_gym.tasks.seed.squad.metric import compute_f1, normalize_answer

HF_COLUMNS = {"id": "string", "title": "string", "context": "string", "question": "string",
              "answers": "{text: list[str], answer_start: list[int]}"}
"""The HF ``squad_v2`` columns this task reads."""

HUB_NAME = "squad_v2"
SQUAD_V2_TRAIN_QUESTIONS = 130_319
LOCAL_TRAIN_QUESTIONS = 4_425
"""Questions of the local dev half's train articles (``"dev-by-article"``)."""
FEATURES_PER_QUESTION = 1.012
"""Estimated roberta-base features per SQuAD v2 train question at 384/128."""
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
SplitScheme = Literal["train-validation", "dev-by-article"]
SPLIT_SCHEMES: tuple[str, ...] = ("train-validation", "dev-by-article")




# ------------------------------------------------------------------ data splits
@dataclass(frozen=True)
class Examples:
    """SQuAD questions as plain columns."""

    ids: list[str]
    titles: list[str]
    contexts: list[str]
    questions: list[str]
    answer_texts: list[list[str]]
    answer_starts: list[list[int]]

    @classmethod
    def from_hf(cls, ds: Any) -> Examples:
        """From a ``datasets.Dataset`` (or dict of columns) in the HF ``squad_v2`` schema."""
        answers = ds["answers"]
        return cls(
            ids=list(ds["id"]),
            titles=list(ds["title"]),
            contexts=list(ds["context"]),
            questions=list(ds["question"]),
            answer_texts=[list(a["text"]) for a in answers],
            answer_starts=[[int(s) for s in a["answer_start"]] for a in answers],
        )

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, idx: Sequence[int]) -> Examples:
        """The questions at ``idx``, in that order."""
        return Examples(*([getattr(self, f)[i] for i in idx] for f in self.__dataclass_fields__))


def split_by_article(titles: Sequence[str], test_every: int = 4) -> tuple[list[int], list[int]]:
    """Train/test question indices: sorted titles at positions ``k*test_every - 1`` are test."""
    order = sorted(set(titles))
    test_titles = {t for i, t in enumerate(order) if i % test_every == test_every - 1}
    train = [i for i, t in enumerate(titles) if t not in test_titles]
    test = [i for i, t in enumerate(titles) if t in test_titles]
    return train, test


def carve_val_by_context(
    contexts: Sequence[str], val_size: int, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Train/val indices: whole contexts in seeded random order until ``val_size`` questions.

    Holding out whole paragraphs keeps a validation question's context unseen in training.
    """
    by_ctx: dict[str, list[int]] = collections.defaultdict(list)
    for i, c in enumerate(contexts):
        by_ctx[c].append(i)
    keys = list(by_ctx)
    val: list[int] = []
    for j in np.random.default_rng(seed).permutation(len(keys)):
        if len(val) >= val_size:
            break
        val.extend(by_ctx[keys[j]])
    if len(val) >= len(contexts):
        raise ValueError(
            f"val_size={val_size} leaves no training questions out of {len(contexts)}; "
            "lower val_size."
        )
    held = set(val)
    return [i for i in range(len(contexts)) if i not in held], sorted(val)


# --------------------------------------------------------------- preprocessing
class QADataset(DictDataset):
    """Tokenized features plus what post-processing needs to map them back to text.

    Tensors: ``input_ids``, ``attention_mask``, ``start_positions``, ``end_positions``
    (and ``token_type_ids`` when the tokenizer makes them, as BERT's does).

    Attributes:
        examples: The questions the features came from.
        example_index: Feature -> question index (numpy, ``(F,)``).
        offsets: ``(F, L, 2)`` character offsets of context tokens, -1 elsewhere
            (None for training data, where they are not needed).
        threshold_source: The features a ``"tuned"`` null threshold is chosen on (the
            validation features, for the test split); None: these features themselves.
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        examples: Examples,
        example_index: np.ndarray,
        offsets: np.ndarray | None,
        threshold_source: QADataset | None = None,
    ) -> None:
        super().__init__(tensors, length_key="attention_mask")
        self.examples = examples
        self.example_index = example_index
        self.offsets = offsets
        self.threshold_source = threshold_source

    def subset(self, idx: np.ndarray) -> QADataset:
        """The features at ``idx`` (training use: offsets are not kept)."""
        return QADataset({k: v[idx] for k, v in self.tensors.items()}, self.examples,
                         self.example_index[idx], None)


def prepare_features(
    tokenizer: Any,
    examples: Examples,
    *,
    max_length: int,
    doc_stride: int,
    keep_offsets: bool = True,
) -> QADataset:
    """HF sliding-window preprocessing with start/end labels for every feature.

    A feature's label is the CLS index (0) when the question is unanswerable or the
    first answer does not lie wholly inside that window.
    """
    enc = tokenizer(
        [q.lstrip() for q in examples.questions],
        examples.contexts,
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    sample_map = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
    n = len(sample_map)
    starts = np.zeros(n, dtype=np.int64)
    ends = np.zeros(n, dtype=np.int64)
    offsets = np.full((n, max_length, 2), -1, dtype=np.int32) if keep_offsets else None
    for i in range(n):
        seq_ids = np.array([s if s is not None else -1 for s in enc.sequence_ids(i)])
        ctx = np.flatnonzero(seq_ids == 1)
        offs = np.asarray(enc["offset_mapping"][i], dtype=np.int64)
        if offsets is not None:
            offsets[i, ctx] = offs[ctx]
        ex = int(sample_map[i])
        if not examples.answer_texts[ex] or len(ctx) == 0:
            continue
        start_char = examples.answer_starts[ex][0]
        end_char = start_char + len(examples.answer_texts[ex][0])
        first, last = ctx[0], ctx[-1]
        if offs[first, 0] > start_char or offs[last, 1] < end_char:
            continue  # answer not fully inside this window -> CLS
        # HF's rule: last context token starting at or before the answer start, first
        # context token ending at or after the answer end.
        window = offs[first : last + 1]
        starts[i] = first + int(np.flatnonzero(window[:, 0] <= start_char)[-1])
        ends[i] = first + int(np.flatnonzero(window[:, 1] >= end_char)[0])
    tensors = {
        "input_ids": torch.tensor(enc["input_ids"], dtype=torch.long),
        "attention_mask": torch.tensor(enc["attention_mask"], dtype=torch.long),
        "start_positions": torch.from_numpy(starts),
        "end_positions": torch.from_numpy(ends),
    }
    if "token_type_ids" in enc:  # BERT-style encoders tell question from context by them
        tensors["token_type_ids"] = torch.tensor(enc["token_type_ids"], dtype=torch.long)
    if not bool((tensors["input_ids"][:, 0] == tokenizer.cls_token_id).all()):
        raise ValueError("Expected the CLS token at position 0 (right padding, RoBERTa-style).")
    return QADataset(tensors, examples, sample_map, offsets)


def subsample_null_windows(features: QADataset, keep: float, seed: int = 0) -> QADataset:
    """Keeps every answer window and a seeded ``keep`` fraction of the answer-less ones.

    Training windows labelled with CLS (unanswerable questions, and windows of answerable
    ones that miss the answer) outnumber answer windows; on a short budget they drown the
    span signal. Down-sampling them is the recipe of Alberti et al. (2019, "A BERT
    Baseline for the Natural Questions"); a ``"tuned"`` null threshold then recalibrates
    when to answer empty.
    """
    if _checked_keep(keep) == 1.0:
        return features
    null = features.tensors["start_positions"].numpy() == 0
    drop = np.random.default_rng(seed).random(len(null)) >= keep
    return features.subset(np.flatnonzero(~(null & drop)))


def _checked_keep(keep: float) -> float:
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"null_window_keep must be in (0, 1], got {keep!r}: the fraction of "
                         f"answer-less training windows kept (1.0 keeps all).")
    return float(keep)


def span_candidates(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    dataset: QADataset,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> tuple[list[str], np.ndarray]:
    """Each question's best span and its null-score difference (HF's v2 post-processing).

    Args:
        start_logits: ``(F, L)`` start logits of the dataset's features, in order.
        end_logits: ``(F, L)`` end logits.
        dataset: The features (offsets, feature -> question map, contexts).
        n_best: Start and end candidates per feature.
        max_answer_length: Longest span in tokens.

    Returns:
        The best span's text per question (``""`` when no valid span exists) and
        ``null_score - best_span_score`` per question (``inf`` without a span): the
        official script's "no-answer probability", thresholded by
        :func:`apply_null_threshold`.
    """
    if dataset.offsets is None:
        raise ValueError("Post-processing needs offsets: prepare the features with keep_offsets.")
    f, length = start_logits.shape
    offsets = dataset.offsets[:, :length]
    k = min(n_best, length)
    rows = np.arange(f)[:, None]
    s_idx = np.argsort(-start_logits, axis=1, kind="stable")[:, :k]
    e_idx = np.argsort(-end_logits, axis=1, kind="stable")[:, :k]
    span = e_idx[:, None, :] - s_idx[:, :, None] + 1
    ok = (
        (offsets[rows, s_idx, 0] >= 0)[:, :, None]
        & (offsets[rows, e_idx, 0] >= 0)[:, None, :]
        & (span >= 1)
        & (span <= max_answer_length)
    )
    score = start_logits[rows, s_idx][:, :, None] + end_logits[rows, e_idx][:, None, :]
    score = np.where(ok, score, -np.inf).reshape(f, -1)
    flat = score.argmax(1)
    best = score[np.arange(f), flat]
    best_s = s_idx[np.arange(f), flat // k]
    best_e = e_idx[np.arange(f), flat % k]
    null = start_logits[:, 0] + end_logits[:, 0]

    n_ex = len(dataset.examples)
    ex_best = np.full(n_ex, -np.inf)
    ex_feat = np.full(n_ex, -1)
    ex_null = np.full(n_ex, np.inf)
    for i, ex in enumerate(dataset.example_index):
        if best[i] > ex_best[ex]:
            ex_best[ex], ex_feat[ex] = best[i], i
        ex_null[ex] = min(ex_null[ex], null[i])
    texts, diffs = [], np.full(n_ex, np.inf)
    for ex in range(n_ex):
        i = ex_feat[ex]
        if i < 0:  # no valid span in any window
            texts.append("")
        else:
            a, b = offsets[i, best_s[i], 0], offsets[i, best_e[i], 1]
            texts.append(dataset.examples.contexts[ex][a:b])
            diffs[ex] = ex_null[ex] - ex_best[ex]
    return texts, diffs


def apply_null_threshold(texts: Sequence[str], diffs: np.ndarray, threshold: float) -> list[str]:
    """Answer empty where ``null_score - best_span_score > threshold``."""
    return [t if d <= threshold else "" for t, d in zip(texts, diffs, strict=True)]


def best_null_threshold(
    golds: Sequence[Sequence[str]], texts: Sequence[str], diffs: np.ndarray
) -> float:
    """The threshold that maximises F1 on these questions (the official ``find_best_thresh``).

    Answering questions in increasing order of their null-score difference, the F1 sum
    changes by the span's F1 on an answerable question and by -1 on an unanswerable one;
    the best prefix sets the threshold. With no prefix better than answering nothing,
    returns ``-inf``; ties keep the smallest threshold, as the official script does.
    """
    if not len(golds) == len(texts) == len(diffs):
        raise ValueError(f"{len(golds)} gold entries, {len(texts)} spans, {len(diffs)} diffs.")
    cur = best = 0.0
    threshold = -np.inf
    for q in np.argsort(diffs, kind="stable"):
        if not np.isfinite(diffs[q]):
            break
        answers = [a for a in golds[q] if normalize_answer(a)]
        cur += max(compute_f1(a, texts[q]) for a in answers) if answers else -1.0
        if cur > best:
            best, threshold = cur, float(diffs[q])
    return threshold


def postprocess_predictions(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    dataset: QADataset,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
) -> list[str]:
    """Answer text per question (HF's v2 post-processing).

    :func:`span_candidates` with the same arguments, then an empty answer where
    ``null_score - best_span_score > null_score_diff_threshold``.
    """
    texts, diffs = span_candidates(start_logits, end_logits, dataset, n_best=n_best,
                                   max_answer_length=max_answer_length)
    return apply_null_threshold(texts, diffs, null_score_diff_threshold)


