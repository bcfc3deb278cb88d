from __future__ import annotations

import functools
import json
import math

import datasets
import gymnasium as gym
import numpy as np
import pytest
import torch

import lr_gym  # registers the ids
from lr_gym.tasks.base import iterate_batches
from lr_gym.tasks.seed.data import DATA_DIR_ENV, DataNotFoundError
from lr_gym.tasks.seed.squad import (
    Examples,
    apply_null_threshold,
    best_null_threshold,
    carve_val_by_context,
    compute_exact,
    compute_f1,
    normalize_answer,
    postprocess_predictions,
    prepare_features,
    span_candidates,
    split_by_article,
    squad_v2_minilm_cpu,
    squad_v2_roberta_cpu,
    squad_v2_roberta_full,
    squad_v2_scores,
    subsample_null_windows,
    train_bpe_tokenizer,
)

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "title": datasets.Value("string"),
        "context": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answers": {
            "text": datasets.List(datasets.Value("string")),
            "answer_start": datasets.List(datasets.Value("int32")),
        },
    }
)
WORDS = [
    "river", "stone", "castle", "harbor", "forest",
    "meadow", "bridge", "tower", "valley", "garden",
]


def _rows(n_articles: int = 8) -> dict[str, list]:
    """Tiny SQuAD-v2-style data: per article two contexts, three questions each."""
    cols: dict[str, list] = {k: [] for k in ("id", "title", "context", "question", "answers")}
    for a in range(n_articles):
        for c in range(2):
            name = f"{WORDS[(a + c) % 10].title()}{a}{c}"
            filler = " ".join(WORDS[(a + c + k) % 10] for k in range(12))
            context = f"The {filler} was built by {name} in the year 1{a}{c}4 near the sea."
            qs = [
                (f"Who built the {WORDS[(a + c) % 10]}?", name),
                (f"When was it built by {name}?", f"1{a}{c}4"),
                (f"Why did the {WORDS[(a + 1) % 10]} sing?", None),
            ]
            for qi, (q, ans) in enumerate(qs):
                cols["id"].append(f"q{a}-{c}-{qi}")
                cols["title"].append(f"Article_{a}")
                cols["context"].append(context)
                cols["question"].append(q)
                if ans is None:
                    cols["answers"].append({"text": [], "answer_start": []})
                else:
                    cols["answers"].append({"text": [ans], "answer_start": [context.index(ans)]})
    return cols


def _write(root, split: str, rows: dict[str, list]) -> None:
    (root / "squad_v2").mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=FEATURES).to_parquet(
        str(root / "squad_v2" / f"{split}.parquet")
    )


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LR_GYM_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    _write(root, "validation", _rows())
    _write(root, "train", _rows(6))
    return root


@pytest.fixture
def tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("LR_GYM_CACHE_DIR", str(tmp_path / "cache"))
    rows = _rows()
    return train_bpe_tokenizer(list(set(rows["context"])) + rows["question"], vocab_size=400)


TINY = {"total_steps": 4, "steps_per_action": 2, "layers": 1, "hidden": 32, "max_length": 64,
        "doc_stride": 16, "vocab_size": 400, "val_size": 6, "batch_size": 4}


# ------------------------------------------------------------------ metric
def test_normalization_and_exact():
    assert normalize_answer("The Cat!") == "cat"
    assert normalize_answer("  an  Apple, a day ") == "apple day"
    assert compute_exact("The Cat!", "cat") == 1
    assert compute_exact("cat", "cats") == 0


def test_no_answer_both_ways():
    # Empty gold: only the empty prediction is right; non-empty gold: empty is wrong.
    assert compute_f1("", "") == 1.0 and compute_exact("", "") == 1
    assert compute_f1("", "something") == 0.0 and compute_exact("", "something") == 0
    assert compute_f1("cat", "") == 0.0 and compute_exact("cat", "") == 0
    scores = squad_v2_scores([[], [], ["cat"]], ["", "a dog", ""])
    assert scores["NoAns_exact"] == 0.5 and scores["NoAns_total"] == 2
    assert scores["HasAns_f1"] == 0.0 and scores["HasAns_total"] == 1
    assert scores["exact"] == pytest.approx(1 / 3)


def test_partial_overlap_f1_and_max_over_golds():
    # gold {big, red, dog}, pred {red, dog, barked}: P = R = 2/3.
    assert compute_f1("the big red dog", "red dog barked") == pytest.approx(2 / 3)
    scores = squad_v2_scores([["the big red dog", "red dog"]], ["red dog barked"])
    # Second gold: P = 2/3, R = 1 -> F1 = 0.8, the max.
    assert scores["f1"] == pytest.approx(0.8)
    assert scores["exact"] == 0.0 and scores["total"] == 1


def test_gold_that_normalizes_to_empty_counts_as_no_answer():
    assert squad_v2_scores([["the"]], [""])["exact"] == 1.0


# ----------------------------------------------------------------- splits
def test_split_by_article_every_fourth_sorted_title():
    titles = [f"T{i}" for i in (5, 1, 3, 0, 7, 2, 6, 4) for _ in range(2)]
    train, test = split_by_article(titles)
    assert sorted({titles[i] for i in test}) == ["T3", "T7"]
    assert not {titles[i] for i in train} & {titles[i] for i in test}
    assert sorted(train + test) == list(range(len(titles)))


def test_val_is_carved_by_context():
    contexts = [f"c{i // 3}" for i in range(30)]
    train, val = carve_val_by_context(contexts, val_size=7)
    assert len(val) == 9  # whole contexts: three of three questions
    assert not {contexts[i] for i in train} & {contexts[i] for i in val}
    assert carve_val_by_context(contexts, 7) == (train, val)
    with pytest.raises(ValueError, match="val_size"):
        carve_val_by_context(contexts, 100)


# ---------------------------------------------------------- preprocessing
def _long_example(answerable: bool = True) -> Examples:
    context = " ".join(f"{WORDS[i % 10]}{i}" for i in range(40)) + " built by Zorblax the Great."
    answers = ["Zorblax"] if answerable else []
    starts = [context.index("Zorblax")] if answerable else []
    return Examples(["x"], ["T"], [context], ["Who built it?"], [answers], [starts])


def test_answer_in_second_window_gets_positions_and_first_window_cls(tokenizer):
    ds = prepare_features(tokenizer, _long_example(), max_length=48, doc_stride=16)
    assert len(ds) >= 2 and (ds.example_index == 0).all()
    start = ds.tensors["start_positions"].numpy()
    end = ds.tensors["end_positions"].numpy()
    assert start[0] == 0 and end[0] == 0  # answer not in the first window -> CLS
    hits = np.flatnonzero(start > 0)
    assert len(hits) >= 1 and hits[0] >= 1
    ctx = ds.examples.contexts[0]
    for i in hits:
        s, e = ds.offsets[i, start[i], 0], ds.offsets[i, end[i], 1]
        assert ctx[s:e] == "Zorblax"
        assert end[i] >= start[i]


def test_unanswerable_points_every_window_at_cls(tokenizer):
    ds = prepare_features(tokenizer, _long_example(False), max_length=48, doc_stride=16)
    assert len(ds) >= 2
    assert (ds.tensors["start_positions"] == 0).all() and (ds.tensors["end_positions"] == 0).all()


def test_subsample_null_windows_keeps_every_answer_window_and_a_seeded_fraction(tokenizer):
    a, b = _long_example(True), _long_example(False)
    examples = Examples(["a", "b"], ["T", "T"], a.contexts + b.contexts,
                        a.questions + b.questions, a.answer_texts + b.answer_texts,
                        a.answer_starts + b.answer_starts)
    ds = prepare_features(tokenizer, examples, max_length=48, doc_stride=16)
    null = ds.tensors["start_positions"].numpy() == 0
    assert null.sum() >= 3 and (~null).sum() >= 1
    assert subsample_null_windows(ds, 1.0) is ds
    for keep in (0.01, 0.5):
        kept = subsample_null_windows(ds, keep, seed=3)
        again = subsample_null_windows(ds, keep, seed=3)
        assert torch.equal(kept.tensors["input_ids"], again.tensors["input_ids"])
        starts = kept.tensors["start_positions"].numpy()
        assert (starts > 0).sum() == (~null).sum()  # every answer window stays
        assert (starts == 0).sum() <= null.sum()
        if keep == 0.01:
            assert (starts == 0).sum() < null.sum()
        assert len(kept) == len(kept.example_index) and kept.offsets is None
    for bad in (0.0, 1.5, -1):
        with pytest.raises(ValueError, match="null_window_keep must be in"):
            subsample_null_windows(ds, bad)


def test_postprocess_n_best_and_null_threshold(tokenizer):
    ds = prepare_features(tokenizer, _long_example(), max_length=48, doc_stride=16)
    f, length = ds.tensors["input_ids"].shape
    start_l, end_l = np.zeros((f, length)), np.zeros((f, length))
    i = int(np.flatnonzero(ds.tensors["start_positions"].numpy() > 0)[0])
    s, e = int(ds.tensors["start_positions"][i]), int(ds.tensors["end_positions"][i])
    start_l[i, s], end_l[i, e] = 5.0, 5.0
    # A higher-scoring but invalid pair (end before start) must be skipped.
    start_l[i, e + 1], end_l[i, s - 1] = 9.0, 9.0
    assert postprocess_predictions(start_l, end_l, ds) == ["Zorblax"]
    # Null score 12 vs best span 10: empty at threshold 0, the span at threshold 3.
    start_l[:, 0], end_l[:, 0] = 6.0, 6.0
    assert postprocess_predictions(start_l, end_l, ds) == [""]
    assert postprocess_predictions(start_l, end_l, ds, null_score_diff_threshold=3.0) == [
        "Zorblax"
    ]
    # Null score is the minimum over the question's features.
    start_l[0, 0] = -10.0
    assert postprocess_predictions(start_l, end_l, ds) == ["Zorblax"]
    # n_best=1 sees only the top (invalid) candidates -> no span -> empty answer.
    assert postprocess_predictions(start_l, end_l, ds, n_best=1) == [""]
    # A span longer than max_answer_length is rejected.
    assert postprocess_predictions(start_l, end_l, ds, max_answer_length=0) == [""]


def test_span_candidates_report_the_null_difference(tokenizer):
    ds = prepare_features(tokenizer, _long_example(), max_length=48, doc_stride=16)
    f, length = ds.tensors["input_ids"].shape
    start_l, end_l = np.zeros((f, length)), np.zeros((f, length))
    i = int(np.flatnonzero(ds.tensors["start_positions"].numpy() > 0)[0])
    start_l[i, int(ds.tensors["start_positions"][i])] = 5.0
    end_l[i, int(ds.tensors["end_positions"][i])] = 5.0
    start_l[:, 0], end_l[:, 0] = 6.0, 6.0
    texts, diffs = span_candidates(start_l, end_l, ds)
    assert texts == ["Zorblax"] and diffs.tolist() == [2.0]  # null 12 - span 10
    assert apply_null_threshold(texts, diffs, 1.9) == [""]
    assert apply_null_threshold(texts, diffs, 2.0) == ["Zorblax"]
    texts, diffs = span_candidates(start_l, end_l, ds, max_answer_length=0)
    assert texts == [""] and diffs.tolist() == [np.inf]  # no valid span: never answered


def test_best_null_threshold_is_the_official_find_best_thresh():
    golds = [["cat"], [], ["dog"], []]
    texts = ["cat", "x", "a bird", "y"]
    # Answering in order of the difference: +1 (cat), -1, +0 (wrong span), -1.
    assert best_null_threshold(golds, texts, np.array([0.5, 1.0, 2.0, 3.0])) == 0.5
    # Nothing worth answering: -inf, i.e. every answer empty.
    assert best_null_threshold(golds, texts, np.array([4.0, -1.0, 2.0, 0.0])) == -np.inf
    # A question without a span (inf) is never answered, whatever it would score.
    assert best_null_threshold([["cat"]], ["cat"], np.array([np.inf])) == -np.inf
    # The tuned threshold scores at least the no-answer share and threshold 0.
    rng = np.random.default_rng(0)
    diffs = rng.normal(size=4)
    t = best_null_threshold(golds, texts, diffs)
    tuned = squad_v2_scores(golds, apply_null_threshold(texts, diffs, t))["f1"]
    for other in (-np.inf, 0.0, np.inf):
        assert tuned >= squad_v2_scores(golds, apply_null_threshold(texts, diffs, other))["f1"]
    with pytest.raises(ValueError, match="gold entries"):
        best_null_threshold(golds, texts[:2], diffs)


# ------------------------------------------------------------------ tasks
def test_cpu_task_loads_and_steps(data_dir):
    task = squad_v2_roberta_cpu(data_dir=str(data_dir), **TINY)
    assert task.metric == "f1" and task.total_steps == 4
    data = task.data_fn()
    assert data.train.examples.titles and set(data.test.examples.titles) == {
        "Article_3", "Article_7"
    }
    assert not set(data.train.examples.titles) & set(data.test.examples.titles)
    assert not set(data.train.examples.contexts) & set(data.val.examples.contexts)
    torch.manual_seed(0)
    model = task.model_fn()
    opt = task.build_optimizer(model)
    batch = next(iterate_batches(data.train, 4, collate_fn=task.collate_fn))
    assert set(batch) == {"input_ids", "attention_mask", "start_positions", "end_positions"}
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(1).max())
    loss = task.loss_fn(model, batch)
    loss.backward()
    opt.step()
    assert math.isfinite(loss.item())
    model.eval()
    with torch.no_grad():
        out = task.eval_fn(model, data.val, task, torch.device("cpu"))
    assert {"loss", "f1", "exact", "HasAns_f1", "NoAns_f1", "total"} <= set(out)
    assert 0.0 <= out["f1"] <= 1.0 and out["total"] == len(data.val.examples)
    # Always answering the best span can only gain on answerable questions.
    assert out["HasAns_f1"] <= out["forced_span_HasAns_f1"] <= 1.0


def test_null_window_keep_thins_training_windows_only(data_dir):
    full = squad_v2_roberta_cpu(data_dir=str(data_dir), **TINY).data_fn()
    thin = squad_v2_roberta_cpu(data_dir=str(data_dir), null_window_keep=0.3, **TINY).data_fn()
    spans = [int((d.train.tensors["start_positions"] > 0).sum()) for d in (full, thin)]
    assert spans[0] == spans[1] > 0 and len(thin.train) < len(full.train)
    assert len(thin.val) == len(full.val) and len(thin.test) == len(full.test)
    with pytest.raises(ValueError, match="answer-less training windows"):
        squad_v2_roberta_cpu(data_dir=str(data_dir), null_window_keep=0)


def test_eval_cap_is_a_fixed_random_subset_not_the_first_questions(data_dir):
    # The test split is Article_3 then Article_7, six questions each: the first five
    # would all come from one article, with its own share of unanswerable questions.
    full = squad_v2_roberta_cpu(data_dir=str(data_dir), **TINY).data_fn().test.examples
    capped = squad_v2_roberta_cpu(data_dir=str(data_dir), max_eval_examples=5,
                                  **TINY).data_fn().test.examples
    assert len(capped) == 5 and set(capped.titles) == {"Article_3", "Article_7"}
    assert capped.ids == [i for i in full.ids if i in set(capped.ids)]  # article order kept
    again = squad_v2_roberta_cpu(data_dir=str(data_dir), max_eval_examples=5,
                                 **TINY).data_fn().test.examples
    assert again.ids == capped.ids


def test_tuned_null_threshold_comes_from_validation(data_dir):
    from lr_gym.tasks.seed.squad import qa_logits

    task = squad_v2_roberta_cpu(data_dir=str(data_dir), null_score_diff_threshold="tuned",
                                **TINY)
    data = task.data_fn()
    assert data.test.threshold_source is data.val and data.val.threshold_source is None
    torch.manual_seed(0)
    model, cpu = task.model_fn().eval(), torch.device("cpu")

    def at(ds, threshold):
        start, end, _ = qa_logits(model, ds, task, cpu)
        texts, diffs = span_candidates(start, end, ds)
        return texts, diffs, squad_v2_scores(ds.examples.answer_texts,
                                             apply_null_threshold(texts, diffs, threshold))

    with torch.no_grad():
        val, test = (task.eval_fn(model, ds, task, cpu) for ds in (data.val, data.test))
        texts, diffs, _ = at(data.val, 0.0)
        chosen = best_null_threshold(data.val.examples.answer_texts, texts, diffs)
        # Validation reports its best-threshold F1, test the score at validation's threshold.
        assert val["f1"] == at(data.val, chosen)[2]["f1"]
        assert test["f1"] == at(data.test, chosen)[2]["f1"]
        for other in (0.0, -np.inf, np.inf):
            assert val["f1"] >= at(data.val, other)[2]["f1"]
    with pytest.raises(ValueError, match="'tuned'"):
        squad_v2_roberta_cpu(data_dir=str(data_dir), null_score_diff_threshold="best")
    with pytest.raises(ValueError, match="'tuned'"):
        squad_v2_roberta_cpu(data_dir=str(data_dir), null_score_diff_threshold=float("nan"))


def test_check_env_gymnasium_and_sb3(data_dir):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("lr_gym/SQuADv2-RoBERTa-CPU-v1", task_kwargs={"data_dir": str(data_dir), **TINY})
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    obs, info = env.reset(seed=0)
    obs, _, term, trunc, info = env.step(np.zeros(1, dtype=np.float32))
    obs, _, term, trunc, info = env.step(np.zeros(1, dtype=np.float32))
    assert term and not trunc and "f1" in info["test"]
    env.close()


def test_full_preset_plan_and_offline_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    task = squad_v2_roberta_full()
    assert task.lr == 1e-5 and task.batch_size == 16 and task.optimizer is torch.optim.AdamW
    # 2 epochs over the estimated features of the train split minus validation.
    assert 16_000 < task.total_steps < 16_600
    with pytest.raises(DataNotFoundError, match=DATA_DIR_ENV):
        task.data_fn()


@pytest.mark.slow
def test_full_preset_with_local_model_and_data(data_dir, tokenizer, tmp_path):
    from transformers import RobertaConfig, RobertaForQuestionAnswering

    model_dir = tmp_path / "tiny-roberta"
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=64,
                           max_position_embeddings=66, type_vocab_size=1)
    RobertaForQuestionAnswering(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    task = squad_v2_roberta_full(data_dir=str(data_dir), model_name_or_path=str(model_dir),
                                 max_length=64, doc_stride=16, val_size=6,
                                 max_train_examples=30)
    # 2 epochs of int(30 questions * 1.012 features) // 16 = 1 step each.
    assert task.total_steps == 2
    data = task.data_fn()
    assert len(data.test.examples) == 48  # the hub "validation" split is the test
    model = task.model_fn()
    batch = next(iterate_batches(data.train, 16, collate_fn=task.collate_fn))
    loss = task.loss_fn(model, batch)
    loss.backward()
    assert math.isfinite(loss.item())
    model.eval()
    with torch.no_grad():
        out = task.eval_fn(model, data.test, task, torch.device("cpu"))
    assert out["total"] == 48 and out["HasAns_total"] == 32 and out["NoAns_total"] == 16


# ------------------------------------------------------------ data-dir cache
def test_data_dir_env_var_change_is_not_masked_by_the_cache(tmp_path, monkeypatch):
    # The loader is cached per process: its key must be the folder actually read.
    monkeypatch.setenv("LR_GYM_CACHE_DIR", str(tmp_path / "cache"))
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, "validation", _rows(8))
    _write(b, "validation", _rows(12))
    monkeypatch.setenv(DATA_DIR_ENV, str(a))
    task = squad_v2_roberta_cpu(**TINY)  # no data_dir: the variable decides
    assert set(task.data_fn().test.examples.titles) == {"Article_3", "Article_7"}
    monkeypatch.setenv(DATA_DIR_ENV, str(b))
    # 12 titles in string order: Article_11, Article_5 and Article_9 are every 4th.
    assert set(task.data_fn().test.examples.titles) == {"Article_11", "Article_5", "Article_9"}


# ------------------------------------------------------------------ MiniLM
def _tiny_bert(tmp_path) -> str:
    from tests.helpers import save_tiny_bert

    rows = _rows()
    words = " ".join(rows["context"] + rows["question"]).replace("?", " ").replace(".", " ")
    return save_tiny_bert(tmp_path / "tiny-bert", words.split())


MINILM_TINY = {"total_steps": 4, "steps_per_action": 2, "max_length": 48, "doc_stride": 16,
               "val_size": 6, "batch_size": 4}


def test_minilm_preset_plan():
    from lr_gym.tasks.seed.pretrained import PACKAGED_MINILM

    task = lr_gym.get_task("SQuADv2-MiniLM-CPU")
    assert task.name == "squad_v2-minilm/cpu" and task.family == "squad_v2-minilm"
    assert task.optimizer is torch.optim.AdamW and task.lr == 3e-4 and task.metric == "f1"
    assert (task.batch_size, task.total_steps, task.steps_per_action) == (16, 120, 15)
    assert task.model_fn.args == (PACKAGED_MINILM,)  # resolved only when the model is built
    v4 = squad_v2_minilm_cpu.defaults
    assert v4["null_window_keep"] == 0.1 and v4["null_score_diff_threshold"] == "tuned"
    assert (v4["max_length"], v4["doc_stride"], v4["max_eval_examples"]) == (128, 32, 400)


def test_minilm_env_runs_on_a_tiny_bert_named_by_the_env_var(tmp_path, monkeypatch, data_dir):
    from lr_gym.tasks.seed.pretrained import MINILM_PATH_ENV

    monkeypatch.setenv(MINILM_PATH_ENV, _tiny_bert(tmp_path))
    env = gym.make("lr_gym/SQuADv2-MiniLM-CPU-v4",
                   task_kwargs={"data_dir": str(data_dir), **MINILM_TINY})
    env.reset(seed=0)
    train = env.unwrapped.data.train
    assert "token_type_ids" in train.tensors  # BERT tells question from context by them
    assert (train.tensors["input_ids"][:, 0] == 2).all()  # [CLS] of the tiny vocabulary
    assert (train.tensors["start_positions"] > 0).any()  # answers were located
    env.step(np.zeros(1, dtype=np.float32))
    *_, term, _, info = env.step(np.zeros(1, dtype=np.float32))
    assert term and {"f1", "exact", "HasAns_f1", "NoAns_f1"} <= set(info["test"])
    env.close()


def test_span_probe_trains_past_an_epoch_and_writes_its_rows(tmp_path, monkeypatch, data_dir):
    from benchmarks import squad_span_probe
    from lr_gym.tasks.seed.pretrained import MINILM_PATH_ENV

    monkeypatch.setenv(MINILM_PATH_ENV, _tiny_bert(tmp_path))
    # The tiny data cannot fill the preset's 300 validation questions.
    monkeypatch.setattr(lr_gym, "get_task", functools.partial(lr_gym.get_task, val_size=6))
    out = tmp_path / "probes" / "probe.json"
    # 24 steps of batch 4 run over the thinned training windows more than once.
    assert squad_span_probe.main([
        "--data-dir", str(data_dir), "--steps", "24", "--eval-every", "12", "--batch-size", "4",
        "--max-length", "48", "--doc-stride", "16", "--null-window-keep", "0.5",
        "--threads", "1", "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["step"] for r in result["rows"]] == [0, 12, 24]
    assert result["meta"]["train_features"] * 2 < 24 * 4
    assert "seed 0, lr 0.0001" in out.with_suffix(".md").read_text()
    assert "answer-less windows kept 0.5" in out.with_suffix(".md").read_text()
    assert squad_span_probe.main(["--summarize", str(out.parent)]) == 0
    summary = (out.parent / "summary.md").read_text().splitlines()
    assert summary[4].startswith("| 0.0001 | 0 | 24 | ")
    assert summary[-1].startswith("| 0.0001 | 1 |")  # the mean over its one seed


def test_span_probe_summary_needs_probes(tmp_path):
    from benchmarks import squad_span_probe

    with pytest.raises(SystemExit, match="No probe JSON"):
        squad_span_probe.main(["--summarize", str(tmp_path)])
