"""SQuAD v2 extractive question answering with RoBERTa or MiniLM (seed task).

Three presets (:class:`~lr_gym.tasks.seed.common.Preset` values of :func:`squad_task`),
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

The presets, their measured costs and their version history: ``docs/tasks.md``.
"""

from lr_gym.tasks.seed.squad.metric import (
    compute_exact,
    compute_f1,
    normalize_answer,
    squad_v2_scores,
)
from lr_gym.tasks.seed.squad.task import (
    qa_eval,
    qa_logits,
    qa_loss,
    squad_task,
    squad_v2_minilm_cpu,
    squad_v2_roberta_cpu,
    squad_v2_roberta_full,
    train_bpe_tokenizer,
)
from lr_gym.tasks.seed.squad.windows import (
    Examples,
    QADataset,
    apply_null_threshold,
    best_null_threshold,
    carve_val_by_context,
    postprocess_predictions,
    prepare_features,
    span_candidates,
    split_by_article,
    subsample_null_windows,
)

__all__ = [
    "Examples",
    "QADataset",
    "apply_null_threshold",
    "best_null_threshold",
    "carve_val_by_context",
    "compute_exact",
    "compute_f1",
    "normalize_answer",
    "postprocess_predictions",
    "prepare_features",
    "qa_eval",
    "qa_logits",
    "qa_loss",
    "span_candidates",
    "split_by_article",
    "squad_task",
    "squad_v2_minilm_cpu",
    "squad_v2_roberta_cpu",
    "squad_v2_roberta_full",
    "squad_v2_scores",
    "subsample_null_windows",
    "train_bpe_tokenizer",
]
