"""SQuAD v2 extractive question answering with RoBERTa or MiniLM (seed task).

Three presets (:class:`~lr_gym.tasks.seed_utils.Preset` values of :func:`squad_task`),
all scored with the official SQuAD v2 metric (exact match and token F1, max over gold
answers; an unanswerable question is right only when the prediction is empty). The
main metric ``"f1"`` is on the **0-1 scale** (the official script reports percentages)
so that it fits the observation; ``"exact"`` and the ``HasAns_*`` / ``NoAns_*``
breakdowns (with their ``*_total`` counts) are reported alongside, and ``"loss"`` is
the mean of the start/end cross-entropies over the evaluated features.

Preprocessing is the standard Hugging Face sliding window: question + context
truncated ``only_second`` to ``max_length`` tokens with ``doc_stride`` tokens of
overlap; a training feature points at the CLS token (index 0) when the question is
unanswerable or its answer is not wholly inside the window. Predictions take the
``n_best`` (20) start and end logits of every feature, keep spans inside the context
of at most ``max_answer_length`` (30) tokens, and answer empty when the null score
(min over the question's features of start+end logit at CLS) exceeds the best span
score by more than ``null_score_diff_threshold`` (0.0; ``"tuned"`` picks, at every
evaluation, the threshold that maximises validation F1, as the official script's
``best_f1_thresh``, and test uses validation's). Unlike HF's script, a question with no
valid span at all is answered empty (HF then outputs the literal "empty").

``squad_v2-roberta/full`` (``lr_gym/SQuADv2-RoBERTa-v1``):
    ``roberta-base`` (``AutoModelForQuestionAnswering.from_pretrained``), hub
    ``squad_v2``, max_length 384, doc_stride 128, AdamW lr 1e-5 (weight decay 0.01),
    grad clip 1.0 (HF Trainer defaults), batch 16, 2 epochs, 200 steps per action.
    Validation: the questions of a seeded random set of *contexts* of the hub train
    split (``val_size`` = 2,000 questions), removed from
    training. Test: the hub validation split (11,873 questions), at episode end.
    ``total_steps`` = 2 epochs of training features; features are only known after
    tokenizing, so the factory estimates them as 1.012 per question (roberta-base,
    384/128) -> 2 * (129,858 // 16) = 16,232 steps. Needs a GPU; not measured here.

``squad_v2-roberta/cpu`` (``lr_gym/SQuADv2-RoBERTa-CPU-v1``):
    Local ``squad_v2/validation.parquet`` (the 6,078-question, 16-article CS224n half
    of the dev set; see shared/data/PROVENANCE.md), split **by article**
    (``split_scheme="dev-by-article"``): titles sorted (Python string order), every
    4th (positions 3, 7, 11, 15: Force, Immune_system, Packet_switching, Yuan_dynasty;
    1,653 questions, ~2,470 features) is test, the other 12 articles (4,425
    questions) are train. Validation: the questions of a seeded random set of whole
    contexts of the train articles (``val_size`` = 300 -> 302 questions), removed from
    training (4,123 training questions). With the hub's full validation split the same
    rule applies to its 35 articles. Model: RoBERTa from ``RobertaConfig`` (2 layers,
    hidden 128, 2 heads, FFN 512; 1.45M parameters, 1.02M of them the 8,000 x 128
    embeddings), trained from scratch; byte-level BPE vocabulary (8,000, min
    frequency 2) trained on the train contexts + questions with ``tokenizers`` and
    cached under ``~/.cache/lr_gym/squad-bpe-8000/<key>`` (``$LR_GYM_CACHE_DIR``
    overrides). max_length 256, doc_stride 64, AdamW lr 5e-4 (weight decay 0.01,
    none on biases/LayerNorm), grad clip 1.0, batch 16, 500 steps, 25 steps per action.
    Measured here (2 CPU cores shared with other jobs, load average 6-11, one torch
    thread; static LR, seed 0, ``/work/shared/data``): 20 env steps, 820 s wall,
    36.7 s per env step (25 optimizer steps + a 302-question validation pass; reset
    with tokenization 35 s). Validation loss 5.58 -> 2.77 (step 250) -> 3.04 (it
    overfits at a static 5e-4). Caveat: this from-scratch model learns no spans in
    this budget; it answers every question empty, so validation F1 = EM = 0.503 (the
    no-answer share) from the first interval on, and test F1 0.547 (HasAns_f1 0,
    NoAns_f1 1, 749/904 questions, loss 2.47). The loss, not F1, carries the signal.

``squad_v2-minilm/cpu`` (``lr_gym/SQuADv2-MiniLM-CPU-v4``; 2 CPU cores; about 7
minutes per episode):
    Fine-tunes a real pretrained encoder, offline, on the data and splits of
    ``squad_v2-roberta/cpu``: all-MiniLM-L6-v2 (BERT architecture, 6 layers, hidden
    384, 22.7M parameters; the ``pretrained`` extra, see :mod:`lr_gym.tasks.pretrained`)
    with its own uncased WordPiece tokenizer (segment ids tell question from context)
    and a fresh span head (initialised from the env's seed). Another checkpoint:
    ``task_kwargs={"model_name_or_path": <folder or hub id>}`` or
    ``$LR_GYM_MINILM_PATH``. 150 validation questions, a fixed random 400 of the test
    questions; max_length 128, doc_stride 32, AdamW lr0 3e-4 (above the 5e-5 to 1e-4
    usually used to fine-tune MiniLM: the span head starts from scratch and the budget
    is 120 steps; chosen on validation, see Versions), weight decay 0.01 (none on
    biases/LayerNorm), grad clip 1.0, batch 16, 120 steps, 15 steps per action, so 8 env
    steps. It keeps 10% of the answer-less training windows (``null_window_keep=0.1``)
    and tunes the no-answer threshold on validation
    (``null_score_diff_threshold="tuned"``). Sized from what a step costs on 2 cores,
    measured: about 2.2 s per batch-16 step of 128 tokens, so about 4.5 min
    of training, and 9 validation passes and a test pass of about 10 and 30 s. Its
    baseline is Hugging Face's recipe, linear warmup over 10% of the budget then linear
    decay to 0: ``agents.baselines`` ``warmup_linear``, i.e. ``gym.make(id,
    mode="anchored", schedule="linear", warmup_frac=0.1, lr_min=0)`` with action 0 (a
    bare ``gym.make`` keeps the env's default constant LR, as every id).

    Versions. v1 (256/64 windows, every window, threshold 0, 240 steps): more than half
    of the training windows point at CLS, and with all of them the span head never beat
    the null score in this budget (every answer empty,
    ``benchmarks/results/minilm_presets.md``). v2 kept 10% of the answer-less windows
    and tuned the threshold: ``benchmarks/results/squad_span_probe.md`` (its recipe,
    every validation question) shows forced-span HasAns F1 0.09 -> 0.49 over the
    budget, validation loss 5.5 -> 2.3, F1 at the tuned threshold 0.510 (answering
    nothing: 0.503), so the loss and HasAns F1 carry the signal. v3 halves the window
    (a 128-token step costs about half a 256-token one) and the budget, so that an
    episode fits the seed experiment's time. Spans start to be learned, and F1 stays
    at answering nothing: the probe of the v3 recipe (``squad_span_probe.py
    --max-length 128 --doc-stride 32 --steps 120 --eval-every 40``, 300 validation
    questions, not committed) went from forced-span HasAns F1 0.09 and validation loss
    4.9 untrained to 0.18 and 2.0, tuned-threshold F1 0.504 -> 0.507; in the seed
    experiment every method answered every test question empty. v4 raises lr0 to 3e-4,
    chosen on validation: ``benchmarks/results/squad_span_probe_v4/summary.md`` (the v4
    recipe at lr 1e-4, 3e-4 and 5e-4, seeds 0 and 1, its 150 validation questions;
    ``--lr <lr> --seed <s> --max-length 128 --doc-stride 32 --steps 120``). 3e-4 has
    the best mean on each column (validation loss 1.87 vs 1.91 and 1.98, forced-span
    HasAns F1 0.30 vs 0.27 and 0.18, best-threshold F1 0.512 vs 0.506 and 0.502), by
    less than the spread between seeds: at this budget the LR matters little, spans
    start to be learned (forced-span HasAns F1 0.08 untrained) and F1 stays near
    answering nothing. So ``qa_eval`` also reports ``forced_span_HasAns_f1``, and the
    loss and that score carry the signal. v4 also takes its 400 test questions at
    random (the first 400 were a few articles, 71% of them unanswerable). Its levels:
    ``benchmarks/results/seed_experiment/cpu/report.md`` (the ``warmup_linear`` rows).
"""

from __future__ import annotations

import collections
import functools
import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lr_gym.tasks.base import Task, TaskData, iterate_batches, move_to
from lr_gym.tasks.batching import DictDataset, dict_collate
from lr_gym.tasks.data import load_split
from lr_gym.tasks.pretrained import PACKAGED_MINILM, resolve_model
from lr_gym.tasks.seed_utils import (
    Preset,
    cache_dir,
    content_key,
    family_of,
    fixed_subset,
    load_with_data_dir,
    publish,
    step_budget,
)

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



# ----------------------------------------------------------------------- metric
def normalize_answer(s: str) -> str:
    """Official SQuAD normalization: lowercase, drop punctuation, articles, extra spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s, flags=re.UNICODE)
    return " ".join(s.split())


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def compute_exact(gold: str, pred: str) -> int:
    """1 if the normalized strings are equal, else 0."""
    return int(normalize_answer(gold) == normalize_answer(pred))


def compute_f1(gold: str, pred: str) -> float:
    """Token-overlap F1 of the normalized strings (no-answer: 1 iff both empty)."""
    gold_toks, pred_toks = _tokens(gold), _tokens(pred)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    same = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def squad_v2_scores(golds: Sequence[Sequence[str]], preds: Sequence[str]) -> dict[str, float]:
    """The official SQuAD v2 scores, as fractions (0-1) rather than percentages.

    Args:
        golds: Gold answer texts per question (empty for unanswerable questions).
        preds: Predicted text per question (``""`` means "no answer").

    Returns:
        ``exact``, ``f1``, ``total`` and, where present, ``HasAns_exact``,
        ``HasAns_f1``, ``HasAns_total``, ``NoAns_exact``, ``NoAns_f1``, ``NoAns_total``.
    """
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold entries but {len(preds)} predictions.")
    exact, f1, has_ans = [], [], []
    for gold, pred in zip(golds, preds, strict=True):
        answers = [a for a in gold if normalize_answer(a)] or [""]
        exact.append(max(compute_exact(a, pred) for a in answers))
        f1.append(max(compute_f1(a, pred) for a in answers))
        has_ans.append(bool(gold))
    exact_a, f1_a, has = np.asarray(exact, float), np.asarray(f1, float), np.asarray(has_ans)
    out = {"exact": exact_a.mean(), "f1": f1_a.mean(), "total": float(len(preds))}
    for name, sel in (("HasAns", has), ("NoAns", ~has)):
        if sel.any():
            out[f"{name}_exact"] = exact_a[sel].mean()
            out[f"{name}_f1"] = f1_a[sel].mean()
            out[f"{name}_total"] = float(sel.sum())
    return {k: float(v) for k, v in out.items()}


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


# ----------------------------------------------------------------- loss / eval
def qa_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the start and end cross-entropies (the HF QA head's loss)."""
    return model(**batch).loss


def qa_logits(
    model: nn.Module, dataset: QADataset, task: Task, device: torch.device
) -> tuple[np.ndarray, np.ndarray, float]:
    """Start and end logits ``(F, L)`` of every feature, and the mean loss over features."""
    total = torch.zeros((), device=device)
    starts, ends = [], []
    full = dataset.tensors["input_ids"].shape[1]
    for batch in iterate_batches(
        dataset, task.eval_batch_size, shuffle=False, collate_fn=task.collate_fn
    ):
        batch = move_to(batch, device)
        out = model(**batch)
        total += out.loss.float() * len(batch["input_ids"])
        pad = full - out.start_logits.shape[1]
        # Trimmed positions are padding (no offsets), so any fill value is never chosen.
        starts.append(nn.functional.pad(out.start_logits.float(), (0, pad), value=-1e4))
        ends.append(nn.functional.pad(out.end_logits.float(), (0, pad), value=-1e4))
    return (torch.cat(starts).cpu().numpy(), torch.cat(ends).cpu().numpy(),
            total.item() / len(dataset))


def _checked_threshold(value: float | str) -> float | str:
    """``value`` if it is a finite number or ``"tuned"``; else a clear error."""
    if value != "tuned" and not (isinstance(value, int | float) and np.isfinite(value)):
        raise ValueError(f"null_score_diff_threshold must be a finite number or 'tuned', got "
                         f"{value!r}.")
    return value


def qa_eval(
    model: nn.Module,
    dataset: QADataset,
    task: Task,
    device: torch.device,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float | Literal["tuned"] = 0.0,
) -> dict[str, float]:
    """Loss over features and official SQuAD v2 scores (0-1) over questions.

    Beside the official scores, ``forced_span_HasAns_f1`` is HasAns F1 with the best
    span always answered (the null never chosen).

    With ``null_score_diff_threshold="tuned"`` the threshold is the one that maximises
    F1 on ``dataset.threshold_source`` (the validation features, for test) or, without
    one, on ``dataset`` itself (the official script's ``best_f1``).
    """
    def candidates(ds: QADataset) -> tuple[list[str], np.ndarray, float]:
        start, end, loss = qa_logits(model, ds, task, device)
        texts, diffs = span_candidates(start, end, ds, n_best=n_best,
                                       max_answer_length=max_answer_length)
        return texts, diffs, loss

    texts, diffs, loss = candidates(dataset)
    threshold = _checked_threshold(null_score_diff_threshold)
    if threshold == "tuned":
        source = dataset.threshold_source
        src_texts, src_diffs = (texts, diffs) if source is None else candidates(source)[:2]
        src_golds = (dataset if source is None else source).examples.answer_texts
        threshold = best_null_threshold(src_golds, src_texts, src_diffs)
    golds = dataset.examples.answer_texts
    scores = squad_v2_scores(golds, apply_null_threshold(texts, diffs, threshold))
    scores["loss"] = loss
    if "HasAns_f1" in scores:
        # The best span always answered: it shows span learning while the null score
        # still wins every question and F1 sits at the no-answer share.
        scores["forced_span_HasAns_f1"] = squad_v2_scores(golds, texts)["HasAns_f1"]
    return scores


# ------------------------------------------------------------------- tokenizer
def train_bpe_tokenizer(
    texts: Sequence[str], vocab_size: int = 8000, cache: str | os.PathLike | None = None
) -> Any:
    """A RoBERTa tokenizer with a byte-level BPE vocabulary trained on ``texts``.

    Cached on disk as ``<cache>/squad-bpe-<vocab_size>/<key>/{vocab.json,merges.txt}``
    (``cache`` defaults to :func:`~lr_gym.tasks.seed_utils.cache_dir`), keyed by
    :func:`~lr_gym.tasks.seed_utils.content_key` of the texts.
    """
    import tokenizers
    from transformers import RobertaTokenizerFast

    key = content_key(texts, vocab_size, tokenizers.__version__)
    folder = cache_dir(cache) / f"squad-bpe-{vocab_size}" / key
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        bpe = tokenizers.ByteLevelBPETokenizer()
        bpe.train_from_iterator(
            texts,
            vocab_size=vocab_size,
            min_frequency=2,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
        )

        def write(tmp: Path) -> None:
            tmp.mkdir(parents=True, exist_ok=True)
            bpe.save_model(str(tmp))

        publish(folder, write)
    return RobertaTokenizerFast(vocab=str(vocab), merges=str(merges))


# ---------------------------------------------------------------- data loading
@dataclass(frozen=True)
class SquadData:
    """Tokenizer and splits of one SQuAD preset (cached per process)."""

    tokenizer: Any
    data: TaskData


def _cap(examples: Examples, n: int | None) -> Examples:
    # A seeded random subset, kept in article order: the first n questions would be a
    # few articles with their own no-answer share.
    return examples if n is None else examples.select(sorted(fixed_subset(len(examples), n)))


@functools.cache
def load_squad(
    data_dir: str | None,
    *,
    split_scheme: SplitScheme,
    model_name_or_path: str | None,
    max_length: int,
    doc_stride: int,
    val_size: int,
    vocab_size: int,
    max_train_examples: int | None,
    max_eval_examples: int | None,
    tokenizer_cache: str | None,
    null_window_keep: float = 1.0,
) -> SquadData:
    """Loads, splits and tokenizes SQuAD v2 (cached per process and arguments).

    Args:
        data_dir: Local data directory, or None for the hub (resolved by
            :func:`~lr_gym.tasks.seed_utils.load_with_data_dir`).
        split_scheme: ``"train-validation"``: train/validation from the ``train``
            split (validation carved by context), test = the ``validation`` split.
            ``"dev-by-article"``: the ``validation`` split alone, test = every 4th
            article (see :func:`split_by_article`), validation carved by context from
            the rest.
        model_name_or_path: Checkpoint whose tokenizer to use (``AutoTokenizer``); None
            trains a byte-level BPE on the training contexts and questions.
        max_length: Tokens per window.
        doc_stride: Overlap between windows.
        val_size: Validation questions (whole contexts until at least this many).
        vocab_size: BPE vocabulary size (trained tokenizer only).
        max_train_examples: Cap on training questions (a fixed random subset, as below).
        max_eval_examples: Cap on validation and test questions (a fixed random subset).
        tokenizer_cache: Folder of trained tokenizers.
        null_window_keep: Fraction of answer-less training windows kept (see
            :func:`subsample_null_windows`); validation and test keep all.
    """
    def split(name: str) -> Examples:
        return Examples.from_hf(load_split("squad_v2", name, hub_name=HUB_NAME,
                                           data_dir_=data_dir, columns=HF_COLUMNS))

    if split_scheme == "train-validation":
        train_all, test = split("train"), split("validation")
    elif split_scheme == "dev-by-article":
        dev = split("validation")
        train_idx, test_idx = split_by_article(dev.titles)
        if not train_idx or not test_idx:
            raise ValueError(
                f"The by-article split needs at least 4 articles, got {len(set(dev.titles))}."
            )
        train_all, test = dev.select(train_idx), dev.select(test_idx)
    else:
        raise ValueError(f"split_scheme must be one of {list(SPLIT_SCHEMES)}, got "
                         f"{split_scheme!r}.")
    tr, va = carve_val_by_context(train_all.contexts, val_size)
    train = _cap(train_all.select(tr), max_train_examples)
    if model_name_or_path is None:
        texts = list(dict.fromkeys(train.contexts)) + list(train.questions)
        tokenizer = train_bpe_tokenizer(texts, vocab_size, tokenizer_cache)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    prep = functools.partial(
        prepare_features, tokenizer, max_length=max_length, doc_stride=doc_stride
    )
    val_features = prep(_cap(train_all.select(va), max_eval_examples))
    test_features = prep(_cap(test, max_eval_examples))
    test_features.threshold_source = val_features  # a tuned threshold comes from validation
    return SquadData(
        tokenizer,
        TaskData(train=subsample_null_windows(prep(train, keep_offsets=False), null_window_keep),
                 val=val_features, test=test_features),
    )


# ------------------------------------------------------------------------ models
def small_roberta_qa(vocab_size: int, max_length: int, *, layers: int = 2, hidden: int = 128,
                     heads: int = 2, ffn: int = 512) -> nn.Module:
    """A RoBERTa QA model from ``RobertaConfig`` (random init)."""
    from transformers import RobertaConfig, RobertaForQuestionAnswering

    config = RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=max_length + 2,  # RoBERTa positions start at pad_id + 1
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    return RobertaForQuestionAnswering(config)


def pretrained_qa(model_name_or_path: str) -> nn.Module:
    """A pretrained encoder with a fresh span head (seeded by the env).

    ``model_name_or_path`` goes through :func:`~lr_gym.tasks.pretrained.resolve_model`.
    """
    from transformers import AutoModelForQuestionAnswering

    return AutoModelForQuestionAnswering.from_pretrained(resolve_model(model_name_or_path))


def _no_decay_groups(weight_decay: float, model: nn.Module) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and LayerNorm weights (HF Trainer's rule)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# ----------------------------------------------------------------------- builder
def squad_task(
    *,
    name: str,
    n_train_source: int,
    data_dir: str | os.PathLike | None = None,
    split_scheme: SplitScheme = "train-validation",
    model_name_or_path: str | None = None,
    lr: float = 1e-5,
    weight_decay: float = 0.01,
    batch_size: int = 16,
    eval_batch_size: int = 64,
    epochs: float = 2.0,
    total_steps: int | None = None,
    steps_per_action: int | None = None,
    max_length: int = 384,
    doc_stride: int = 128,
    val_size: int = 2000,
    vocab_size: int = 8000,
    layers: int = 2,
    hidden: int = 128,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    tokenizer_cache: str | os.PathLike | None = None,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float | Literal["tuned"] = 0.0,
    null_window_keep: float = 1.0,
    grad_clip: float | None = 1.0,
    description: str = "",
) -> Task:
    """A SQuAD v2 task (nothing is loaded until ``data_fn``/``model_fn``).

    Args:
        name: Task name, ``squad_v2-<model>/<preset>`` (its family is the part before
            the slash).
        n_train_source: Questions of the source training data, so ``epochs`` converts
            to steps without loading anything.
        data_dir: Local data folder (``squad_v2/{train,validation}.parquet``); else
            ``$LR_GYM_DATA_DIR``, else the HF hub.
        split_scheme: Where train, validation and test come from (see
            :func:`load_squad`).
        model_name_or_path: Pretrained model and tokenizer (hub id, local folder, or
            :data:`~lr_gym.tasks.pretrained.PACKAGED_MINILM`); None trains a small
            RoBERTa from scratch with a BPE tokenizer trained on the data.
        lr: AdamW ``lr0``.
        weight_decay: AdamW weight decay (not on biases / LayerNorm).
        batch_size: Training batch (features).
        eval_batch_size: Features per evaluation batch.
        epochs: Epochs that set ``total_steps`` when it is not given (features are
            estimated at :data:`FEATURES_PER_QUESTION` per question).
        total_steps: Episode budget (overrides ``epochs``).
        steps_per_action: Optimizer steps per env step; default one epoch.
        max_length: Tokens per window.
        doc_stride: Overlap between windows.
        val_size: Validation questions carved (by context) from the training data.
        vocab_size: BPE vocabulary size (from-scratch model only).
        layers: Transformer layers (from-scratch model only).
        hidden: Hidden size; heads = hidden // 64, FFN = 4 * hidden (from scratch only).
        max_train_examples: Cap on training questions (tests, smoke runs).
        max_eval_examples: Cap on validation and test questions (a fixed random subset).
        tokenizer_cache: Folder for trained tokenizers (default: see
            :func:`~lr_gym.tasks.seed_utils.cache_dir`).
        n_best: Start/end candidates per feature in post-processing.
        max_answer_length: Longest answer span in tokens.
        null_score_diff_threshold: Null-vs-span margin for answering empty, or
            ``"tuned"``: the margin that maximises F1 on the validation questions (the
            official script's ``best_f1_thresh``), chosen afresh at every evaluation;
            validation then reports its best-threshold F1, test uses validation's.
        null_window_keep: Fraction of answer-less training windows kept (seeded; see
            :func:`subsample_null_windows`). 1.0 is Hugging Face's preprocessing.
        grad_clip: Max gradient norm (HF Trainer's default 1.0).
        description: One-line description.
    """
    _checked_threshold(null_score_diff_threshold)
    null_window_keep = _checked_keep(null_window_keep)
    if split_scheme not in SPLIT_SCHEMES:
        raise ValueError(f"split_scheme must be one of {list(SPLIT_SCHEMES)}, got "
                         f"{split_scheme!r}.")
    total_steps, steps_per_action = step_budget(
        n_train_source=n_train_source,
        val_size=val_size,
        batch_size=batch_size,
        epochs=epochs,
        total_steps=total_steps,
        steps_per_action=steps_per_action,
        max_train_examples=max_train_examples,
        rows_per_example=FEATURES_PER_QUESTION,
    )
    data = functools.partial(
        load_with_data_dir,
        load_squad,
        data_dir,
        split_scheme=split_scheme,
        model_name_or_path=None if model_name_or_path is None else str(model_name_or_path),
        max_length=max_length,
        doc_stride=doc_stride,
        val_size=val_size,
        vocab_size=vocab_size,
        max_train_examples=max_train_examples,
        max_eval_examples=max_eval_examples,
        tokenizer_cache=None if tokenizer_cache is None else str(tokenizer_cache),
        null_window_keep=null_window_keep,
    )
    if model_name_or_path is None:
        def model_fn() -> nn.Module:
            # The vocabulary is trained on the data, so the model needs it first.
            return small_roberta_qa(len(data().tokenizer), max_length, layers=layers,
                                    hidden=hidden, heads=max(hidden // 64, 1), ffn=4 * hidden)
    else:
        model_fn = functools.partial(pretrained_qa, str(model_name_or_path))
    return Task(
        name=name,
        model_fn=model_fn,
        data_fn=lambda: data().data,
        lr=lr,
        optimizer=torch.optim.AdamW,
        param_groups_fn=functools.partial(_no_decay_groups, weight_decay),
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        total_steps=total_steps,
        steps_per_action=steps_per_action,
        loss_fn=qa_loss,
        eval_fn=functools.partial(
            qa_eval, n_best=n_best, max_answer_length=max_answer_length,
            null_score_diff_threshold=null_score_diff_threshold,
        ),
        metric="f1",
        collate_fn=dict_collate,
        grad_clip=grad_clip,
        family=family_of(name),
        description=description,
    )


# ----------------------------------------------------------------------- presets
squad_v2_roberta_full = Preset(
    "squad_v2-roberta/full",
    squad_task,
    dict(
        n_train_source=SQUAD_V2_TRAIN_QUESTIONS,
        split_scheme="train-validation",
        model_name_or_path="roberta-base",
        lr=1e-5,
        batch_size=16,
        eval_batch_size=64,
        epochs=2.0,
        steps_per_action=200,
        max_length=384,
        doc_stride=128,
        val_size=2000,
        description="SQuAD v2, roberta-base, AdamW lr0 1e-5, batch 16, 2 epochs, 384/128",
    ),
)
"""``squad_v2-roberta/full``: hub SQuAD v2, roberta-base (see the module docstring)."""

squad_v2_roberta_cpu = Preset(
    "squad_v2-roberta/cpu",
    squad_task,
    dict(
        n_train_source=LOCAL_TRAIN_QUESTIONS,
        split_scheme="dev-by-article",
        model_name_or_path=None,
        lr=5e-4,
        batch_size=16,
        eval_batch_size=128,
        total_steps=500,
        steps_per_action=25,
        max_length=256,
        doc_stride=64,
        val_size=300,
        description="SQuAD v2 dev half by article, 2-layer RoBERTa-128 from scratch, "
                    "AdamW lr0 5e-4, 500 steps",
    ),
)
"""``squad_v2-roberta/cpu``: the local dev half by article, a small RoBERTa from scratch."""

squad_v2_minilm_cpu = Preset(
    "squad_v2-minilm/cpu",
    squad_task,
    dict(  # the data and splits of squad_v2-roberta/cpu; a fine-tuning LR and budget
        squad_v2_roberta_cpu.defaults,
        model_name_or_path=PACKAGED_MINILM,
        lr=3e-4,
        total_steps=120,
        steps_per_action=15,
        max_length=128,
        doc_stride=32,
        val_size=150,
        max_eval_examples=400,
        null_window_keep=0.1,
        null_score_diff_threshold="tuned",  # recalibrates the null after the thinning
        description="SQuAD v2 dev half by article, all-MiniLM-L6-v2 fine-tuned, AdamW lr0 "
                    "3e-4, 128/32 windows, 120 steps, 10% of answer-less training windows, "
                    "null threshold tuned on validation",
    ),
)
"""``squad_v2-minilm/cpu``: the local dev half by article, the packaged MiniLM fine-tuned."""
