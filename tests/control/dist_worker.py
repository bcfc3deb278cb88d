"""One rank of a 2-process CPU (gloo) run of the controller; ``test_distributed`` launches it.

``python -m torch.distributed.run --nproc_per_node 2 dist_worker.py <scenario> <out>`` (or
plain ``python dist_worker.py lightning <out>``: Lightning launches the second rank).
Each rank writes ``<out>/rank<r>.json``: the LR of every optimizer step, the controller's
state and guard rollbacks, and the final weights.
"""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.nn.functional as F

T, K = 16, 4
TIMEOUT = timedelta(seconds=60)  # a collective that hangs fails instead


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] - x[:, 1] > 0).long()


def _net() -> torch.nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank, as DDP expects
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def _weights(model: torch.nn.Module) -> list[float]:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()


def _write(out: Path, rank: int, result: dict) -> None:
    (out / f"rank{rank}.json").write_text(json.dumps(result))


class _Skewed:
    """A policy whose actions are 0.1 above the wrapped one's."""

    def __init__(self, policy: object) -> None:
        self._policy = policy

    def act(self, obs: object) -> float:
        return self._policy.act(obs) + 0.1

    def __getattr__(self, name: str) -> object:
        return getattr(self._policy, name)


def plain(out: Path, nan_val_at: int | None = None, skew: bool = False) -> None:
    """DDP in a plain loop, each rank validating its own shard, 3x apart in loss.

    With ``nan_val_at``, rank 1 alone reports a NaN validation loss at that decision.
    With ``skew``, rank 1's policy and guard disagree with rank 0's on the same inputs
    (as float nondeterminism could make them): its actions are 0.1 higher and its guard
    rolls back after any LR increase.
    """
    import torch.distributed as dist
    from prodigyopt import Prodigy

    from lr_gym.control.torch_scheduler import LRControllerScheduler

    dist.init_process_group("gloo", timeout=TIMEOUT)
    rank = dist.get_rank()
    net = _net()
    model = torch.nn.parallel.DistributedDataParallel(net)
    opt = Prodigy(model.parameters(), lr=1.0)
    sched = LRControllerScheduler(opt, "lr_gym/default", total_steps=T, steps_per_action=K,
                                  model=net)
    if skew and rank == 1:
        sched.controller.policy = _Skewed(sched.controller.policy)
        sched.controller._guard.tolerance = -math.inf
    x, y = _data(64 * T, seed=1 + rank)  # each rank's own training shard
    vx, vy = _data(64, seed=100 + rank)  # and validation shard

    def evaluate(decision: int) -> dict[str, float]:
        with torch.no_grad():
            logits = net(vx)
        loss = float(F.cross_entropy(logits, vy)) * (1 + 2 * rank)  # rank-dependent
        if decision == nan_val_at and rank == 1:
            loss = math.nan
        return {"val_loss": loss, "val_metric": float((logits.argmax(1) == vy).float().mean())}

    sched.observe(**evaluate(0))
    lrs, weights_after = [], {}
    for step in range(T):
        lrs.append(opt.param_groups[0]["lr"])
        sl = slice(64 * step, 64 * (step + 1))
        loss = F.cross_entropy(model(x[sl]), y[sl])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step(loss)
        if sched.eval_due:
            sched.observe(**evaluate((step + 1) // K))
            weights_after[step + 1] = _weights(net)
    ctl = sched.controller
    _write(out, rank, {"lrs": lrs, "state": ctl.state_dict(), "restores": ctl._guard.restores,
                       "weights_after": weights_after, "weights": _weights(net)})
    # Both ranks done before either tears gloo down: a rank that exits while the other
    # still tears down aborts it ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


def hf(out: Path) -> None:
    """The HF Trainer under torchrun (gloo); rank 1 sees 3x the validation loss.

    The Trainer gathers the evaluation over ranks itself; a callback ahead of the
    controller's makes the loss rank-dependent, as a rank-local evaluation would be.
    """
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from lr_gym.control.hf import LRControllerCallback

    rank = int(os.environ["RANK"])

    class Ids(torch.utils.data.Dataset):
        def __init__(self, n: int, seed: int) -> None:
            g = torch.Generator().manual_seed(seed)
            self.ids = torch.randint(1, 30, (n, 8), generator=g)
            self.labels = (self.ids[:, 0] > 15).long()

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.ids[i], "attention_mask": torch.ones(8, dtype=torch.long),
                    "labels": self.labels[i]}

    class RankLocal(TrainerCallback):
        def __init__(self) -> None:
            self.gathered: list[float] = []

        def on_evaluate(self, args, state, control, metrics=None, **kw) -> None:  # noqa: ANN001
            self.gathered.append(metrics["eval_loss"])
            metrics["eval_loss"] *= 1 + 2 * rank

    class Spy(TrainerCallback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_step_begin(self, args, state, control, optimizer=None, **kw) -> None:  # noqa: ANN001
            self.lrs.append(optimizer.param_groups[0]["lr"])

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))

    def accuracy(pred) -> dict[str, float]:  # noqa: ANN001
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    local, spy = RankLocal(), Spy()
    cb = LRControllerCallback("lr_gym/task-base", steps_per_action=K,
                              tensorboard=str(out / "tb"))
    args = TrainingArguments(
        output_dir=str(out / "trainer"), max_steps=T, per_device_train_batch_size=8,
        per_device_eval_batch_size=8, learning_rate=1e-3, lr_scheduler_type="constant",
        eval_on_start=True, eval_strategy="no", save_strategy="steps", save_steps=T,
        report_to=[], use_cpu=True, disable_tqdm=True, seed=0, ddp_backend="gloo",
        ddp_timeout=int(TIMEOUT.total_seconds()), dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=Ids(64, 0),
                      eval_dataset=Ids(16, 1), compute_metrics=accuracy,
                      callbacks=[local, cb, spy])
    trainer.train()
    ctl = cb.controller
    _write(out, rank, {"lrs": spy.lrs, "state": ctl.state_dict(), "gathered": local.gathered,
                       "world": trainer.args.world_size, "weights": _weights(trainer.model)})


def lightning(out: Path) -> None:
    """Lightning's ``ddp`` with 2 CPU devices; each rank logs its own validation loss."""
    import lightning.pytorch as pl

    from lr_gym.control.lightning import LRControllerLightning

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _net()

        def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def validation_step(self, batch, batch_idx) -> None:  # noqa: ANN001
            x, y = batch
            logits = self.net(x)
            # No sync_dist: rank-local, and scaled so the ranks disagree clearly.
            self.log("val_loss", F.cross_entropy(logits, y) * (1 + 2 * self.global_rank))
            self.log("val_acc", (logits.argmax(1) == y).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    class Spy(pl.Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    x, y = _data(32 * 4, seed=1)
    vx, vy = _data(64, seed=2)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(vx, vy), batch_size=16)
    cb, spy = LRControllerLightning("lr_gym/task-base"), Spy()
    trainer = pl.Trainer(
        max_steps=T, val_check_interval=K, check_val_every_n_epoch=None,
        num_sanity_val_steps=-1, callbacks=[cb, spy], accelerator="cpu", devices=2,
        strategy=pl.strategies.DDPStrategy(timeout=TIMEOUT, process_group_backend="gloo"),
        logger=pl.loggers.CSVLogger(out, name="csv"), log_every_n_steps=1,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    model = Tiny()
    trainer.fit(model, train, val)
    _write(out, trainer.global_rank, {"lrs": spy.lrs, "state": cb.controller.state_dict(),
                                      "weights": _weights(model)})


if __name__ == "__main__":
    scenario, folder = sys.argv[1], Path(sys.argv[2])
    if scenario == "plain":
        plain(folder)
    elif scenario == "rollback":
        plain(folder, nan_val_at=2)
    elif scenario == "skew":
        plain(folder, skew=True)
    else:
        {"hf": hf, "lightning": lightning}[scenario](folder)
