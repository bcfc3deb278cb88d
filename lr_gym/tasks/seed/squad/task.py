"""The SQuAD v2 task: loss and evaluation, tokenizer, data loading, models, presets."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lr_gym.files import atomic_write
from lr_gym.tasks.base import Task, TaskData, iterate_batches, move_to
from lr_gym.tasks.seed.batching import dict_collate
from lr_gym.tasks.seed.common import (
    Preset,
    cache_dir,
    content_key,
    fixed_subset,
    load_with_data_dir,
    seed_task,
)
from lr_gym.tasks.seed.data import load_split
from lr_gym.tasks.seed.pretrained import PACKAGED_MINILM, resolve_model
from lr_gym.tasks.seed.squad.metric import squad_v2_scores
from lr_gym.tasks.seed.squad.windows import (
    FEATURES_PER_QUESTION,
    HF_COLUMNS,
    HUB_NAME,
    LOCAL_TRAIN_QUESTIONS,
    SPECIAL_TOKENS,
    SPLIT_SCHEMES,
    SQUAD_V2_TRAIN_QUESTIONS,
    Examples,
    QADataset,
    SplitScheme,
    _checked_keep,
    apply_null_threshold,
    best_null_threshold,
    carve_val_by_context,
    prepare_features,
    span_candidates,
    split_by_article,
    subsample_null_windows,
)


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
    (``cache`` defaults to :func:`~lr_gym.tasks.seed.common.cache_dir`), keyed by
    :func:`~lr_gym.tasks.seed.common.content_key` of the texts.
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

        atomic_write(folder, write)
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
            :func:`~lr_gym.tasks.seed.common.load_with_data_dir`).
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

    ``model_name_or_path`` goes through :func:`~lr_gym.tasks.seed.pretrained.resolve_model`.
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
    name: str, n_train_source: int,
    data_dir: str | os.PathLike | None = None, split_scheme: SplitScheme = "train-validation",
    model_name_or_path: str | None = None,
    lr: float = 1e-5, weight_decay: float = 0.01, batch_size: int = 16, eval_batch_size: int = 64,
    epochs: float = 2.0, total_steps: int | None = None, steps_per_action: int | None = None,
    max_length: int = 384, doc_stride: int = 128, val_size: int = 2000,
    vocab_size: int = 8000, layers: int = 2, hidden: int = 128,
    max_train_examples: int | None = None, max_eval_examples: int | None = None,
    tokenizer_cache: str | os.PathLike | None = None,
    n_best: int = 20, max_answer_length: int = 30,
    null_score_diff_threshold: float | Literal["tuned"] = 0.0, null_window_keep: float = 1.0,
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
            :data:`~lr_gym.tasks.seed.pretrained.PACKAGED_MINILM`); None trains a small
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
            :func:`~lr_gym.tasks.seed.common.cache_dir`).
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
    data = _squad_loader(
        data_dir, split_scheme, null_window_keep, model_name_or_path=model_name_or_path,
        max_length=max_length, doc_stride=doc_stride, val_size=val_size, vocab_size=vocab_size,
        max_train_examples=max_train_examples, max_eval_examples=max_eval_examples,
        tokenizer_cache=tokenizer_cache)
    return seed_task(
        name, description,
        dict(n_train_source=n_train_source, val_size=val_size, batch_size=batch_size,
             epochs=epochs, total_steps=total_steps, steps_per_action=steps_per_action,
             max_train_examples=max_train_examples, rows_per_example=FEATURES_PER_QUESTION),
        model_fn=_squad_model_fn(data, model_name_or_path, max_length, layers, hidden),
        data_fn=lambda: data().data,
        lr=lr, optimizer=torch.optim.AdamW,
        param_groups_fn=functools.partial(_no_decay_groups, weight_decay),
        batch_size=batch_size, eval_batch_size=eval_batch_size, loss_fn=qa_loss,
        eval_fn=functools.partial(qa_eval, n_best=n_best, max_answer_length=max_answer_length,
                                  null_score_diff_threshold=null_score_diff_threshold),
        metric="f1", collate_fn=dict_collate, grad_clip=grad_clip,
    )


def _squad_loader(
    data_dir: str | os.PathLike | None, split_scheme: SplitScheme, null_window_keep: float,
    **kwargs: Any,
) -> functools.partial[SquadData]:
    """Checks the split and null-window arguments; returns the (cached) data loader.

    Args:
        data_dir: Local data folder, or None (see :func:`squad_task`).
        split_scheme: One of :data:`SPLIT_SCHEMES`.
        null_window_keep: Fraction of answer-less training windows kept.
        **kwargs: The rest of :func:`load_squad`'s keywords, in its order.

    Returns:
        ``loader()``: the :class:`SquadData`, loaded at the first call.

    Raises:
        ValueError: An unknown ``split_scheme`` or a ``null_window_keep`` out of range.
    """
    null_window_keep = _checked_keep(null_window_keep)
    if split_scheme not in SPLIT_SCHEMES:
        raise ValueError(f"split_scheme must be one of {list(SPLIT_SCHEMES)}, got "
                         f"{split_scheme!r}.")
    # The keywords in load_squad's order: they are its cache key.
    return functools.partial(
        load_with_data_dir, load_squad, data_dir, split_scheme=split_scheme, **kwargs,
        null_window_keep=null_window_keep,
    )


def _squad_model_fn(data: Callable[[], SquadData], model_name_or_path: str | None,
                    max_length: int, layers: int, hidden: int) -> Callable[[], nn.Module]:
    """The task's model constructor: pretrained, or a small RoBERTa sized to the vocabulary.

    Args:
        data: The data loader (a from-scratch model needs its trained tokenizer).
        model_name_or_path: Pretrained model, or None for a small RoBERTa.
        max_length: Tokens per window.
        layers: Transformer layers (from scratch only).
        hidden: Hidden size (from scratch only).

    Returns:
        A function building a fresh model.
    """
    if model_name_or_path is None:
        def model_fn() -> nn.Module:
            # The vocabulary is trained on the data, so the model needs it first.
            return small_roberta_qa(len(data().tokenizer), max_length, layers=layers,
                                    hidden=hidden, heads=max(hidden // 64, 1), ffn=4 * hidden)
    else:
        model_fn = functools.partial(pretrained_qa, str(model_name_or_path))
    return model_fn


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
