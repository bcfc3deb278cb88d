"""Full-preset smoke check on an accelerator: a few optimizer steps of each full model.

Runs every full seed-task preset (ResNet-18/CIFAR-10, BERT-base/IMDB,
RoBERTa-base/SQuAD v2, BiLSTM-CRF/CoNLL-2003) as an ``LRControlEnv`` episode cut to
``--steps`` optimizer steps on ``--device``, from local data. With ``--offline-models``
the BERT-base and RoBERTa-base checkpoints are replaced by randomly initialised models
of the same architecture and size (their default configs) with tokenizers trained on
the local data, for machines that cannot reach the HF hub. Prints seconds per
optimizer step, peak accelerator memory and the metrics, and writes JSON.

Usage:
    python benchmarks/gpu_full_presets.py --data-dir DATA --device cuda --offline-models
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import lr_gym  # noqa: F401 - registers the ids
from agents.evaluation.results import (
    add_benchmark_arguments,
    meta,
    parse_benchmark_args,
    write_results,
)


def offline_bert(workdir: Path, texts: list[str]) -> str:
    """bert-base-uncased's architecture, random init, WordPiece vocab from ``texts``."""
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    from lr_gym.tasks.seed.imdb import train_wordpiece

    path = workdir / "bert-base-offline"
    path.mkdir(parents=True, exist_ok=True)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=train_wordpiece(texts, 30522, workdir), unk_token="[UNK]",
        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    tok.save_pretrained(path)
    config = BertConfig(vocab_size=len(tok), num_labels=2)  # base: 12 layers, 768 hidden
    BertForSequenceClassification(config).save_pretrained(path)
    return str(path)


def offline_roberta(workdir: Path, texts: list[str]) -> str:
    """roberta-base's architecture, random init, byte-level BPE trained on ``texts``."""
    from transformers import RobertaConfig, RobertaForQuestionAnswering

    from lr_gym.tasks.seed.squad import train_bpe_tokenizer

    path = workdir / "roberta-base-offline"
    path.mkdir(parents=True, exist_ok=True)
    tok = train_bpe_tokenizer(texts, vocab_size=50265)
    tok.save_pretrained(path)
    config = RobertaConfig(vocab_size=len(tok), max_position_embeddings=514,
                           pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id)
    RobertaForQuestionAnswering(config).save_pretrained(path)
    return str(path)


def _run_preset(env_id: str, task_kwargs: dict, device: str, k: int) -> dict:
    """One constant-LR episode of a preset, timed; a failure is reported in the row.

    Args:
        env_id: The env to make.
        task_kwargs: Its task's keywords.
        device: Torch device of the run.
        k: Optimizer steps per env step.

    Returns:
        The row: the task's settings, timings, peak memory, final metrics (or the error).
    """
    row: dict = {"env_id": env_id}
    try:
        env = gym.make(env_id, device=device, task_kwargs=task_kwargs,
                       schedule="constant", disable_env_checker=True)
        task = env.unwrapped.task
        row.update(lr0=task.lr, batch_size=task.batch_size, description=task.description)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        _, info = env.reset(seed=0)
        row["reset_s"] = time.perf_counter() - t0
        times, done = [], False
        while not done:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            _, _, term, trunc, info = env.step(np.zeros(1, np.float32))
            times.append(time.perf_counter() - t0)
            done = term or trunc
        n_params = sum(p.numel() for p in env.unwrapped.model.parameters())
        row.update(
            ok=not info["diverged"], params_m=n_params / 1e6,
            # The first interval includes warm-up (cuDNN autotune, allocator).
            s_per_step=(np.mean(times[1:]) if len(times) > 1 else times[0]) / k,
            env_step_s=times,
            peak_mem_gb=(torch.cuda.max_memory_allocated() / 2**30
                         if torch.cuda.is_available() else None),
            val={k2[4:]: v for k2, v in info.items() if k2.startswith("val_") and
                 isinstance(v, float) and k2 != "val_metric"},
            test=info.get("test", {}),
        )
        env.close()
    except Exception as err:  # report and go on to the next preset
        row.update(ok=False, error=f"{type(err).__name__}: {err}")
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=40, help="Optimizer steps per preset.")
    p.add_argument("--offline-models", action="store_true")
    p.add_argument("--workdir", default="/tmp/lr_gym_gpu")
    p.add_argument("--only", nargs="*", default=None, help="Subset of env ids.")
    add_benchmark_arguments(p, "benchmarks/results/gpu_full_presets.json")
    args = parse_benchmark_args(p)
    workdir = Path(args.workdir)
    import pandas as pd

    models = {}
    if args.offline_models:
        imdb = pd.read_parquet(Path(args.data_dir) / "imdb" / "train.parquet")["text"].tolist()
        squad = pd.read_parquet(Path(args.data_dir) / "squad_v2" / "train.parquet")
        models["imdb"] = offline_bert(workdir, imdb[:4000])
        models["squad"] = offline_roberta(
            workdir, squad["context"].drop_duplicates().tolist() + squad["question"].tolist())

    k = max(args.steps // 2, 1)
    common = {"data_dir": args.data_dir, "total_steps": args.steps, "steps_per_action": k}
    presets = {
        "lr_gym/CIFAR10-ResNet18-v1": {**common, "max_train_examples": 4000, "val_size": 500,
                                       "max_test_examples": 1000},
        "lr_gym/IMDB-BERT-v1": {**common, "max_train_examples": 2000, "val_size": 256,
                                "max_test_examples": 512,
                                **({"model_name_or_path": models["imdb"]} if models else {})},
        "lr_gym/SQuADv2-RoBERTa-v1": {**common, "max_train_examples": 2000, "val_size": 200,
                                      "max_eval_examples": 300,
                                      **({"model_name_or_path": models["squad"]}
                                         if models else {})},
        "lr_gym/CoNLL2003-BiLSTMCRF-v1": {**common, "max_train_examples": 4000,
                                          "val_size": 500, "max_eval_examples": 500},
    }
    rows = []
    for env_id, task_kwargs in presets.items():
        if args.only and env_id not in args.only:
            continue
        row = _run_preset(env_id, task_kwargs, args.device, k)
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)

    table = ["| env | params (M) | batch | s / optimizer step | peak mem (GB) | ok |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        mem = r.get("peak_mem_gb")
        table.append(f"| {r['env_id']} | {r.get('params_m', float('nan')):.1f} | "
                     f"{r.get('batch_size')} | {r.get('s_per_step', float('nan')):.4f} | "
                     f"{'n/a' if mem is None else f'{mem:.2f}'} | {r['ok']} |")
    print("\n" + "\n".join(table))
    info = meta(device=args.device,
                gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    write_results(args.output, {"meta": info, "rows": rows}, "\n".join(table))

if __name__ == "__main__":
    main()
