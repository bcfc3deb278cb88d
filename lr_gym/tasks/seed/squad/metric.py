"""The official SQuAD v2 metric: exact match and token F1, max over gold answers."""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

import numpy as np


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


