from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lr_gym.splits import FAMILIES, split_of_family
from lr_gym.tasks import Task
from lr_gym.tasks.data_variants import noisy_labels, split_sizes, train_size, vary
from lr_gym.tasks.families import sequence_data, teacher
from lr_gym.tasks.families.base import (
    OPTIMIZERS,
    Choice,
    Range,
    RunSpace,
    TaskFamily,
    get_family,
    sampled_family_names,
)
from lr_gym.tasks.families.generated import N_EXAMPLES as GEN_EXAMPLES
from lr_gym.tasks.families.generated import generated_variant, markov_data
from lr_gym.tasks.families.sequence_data import sequence_task_arrays
from lr_gym.tasks.families.tabular import N_EXAMPLES as SKLEARN_EXAMPLES
from lr_gym.tasks.families.tabular import SHAPES, sklearn_variant
from lr_gym.tasks.grids.generated import load_generated_data

NAMES = sampled_family_names()


def sample(name: str, seed: int):
    family = get_family(name)
    return family, family.sample_config(np.random.default_rng(seed))


def test_every_declared_sampler_resolves_and_matches_its_declaration():
    assert set(NAMES) == {"tabular-mlp", "teacher-mlp", "seq-transformer", "digits-cnn",
                          "spirals-resmlp", "seq-lstm", "waves-conv1d", "seq-gru",
                          # task distribution v3 (lr_gym.tasks.families.finetune)
                          "teacher-mlp-finetune", "digits-mlp-finetune",
                          "seq-transformer-finetune", "digits-cnn-finetune",
                          "waves-conv1d-finetune"}
    for name in NAMES:
        family = get_family(name)
        assert isinstance(family, TaskFamily)
        decl = FAMILIES[name]
        assert (family.name, family.dataset, family.architecture) == (
            decl.name, decl.dataset, decl.architecture)
        assert split_of_family(name) is not None
        assert set(family.reference_lrs) == set(OPTIMIZERS)
        assert set(family.run_space.optimizers) == set(OPTIMIZERS)
    with pytest.raises(KeyError, match="families that sample tasks"):
        get_family("digits-mlp")  # a grid family without a sampler
    with pytest.raises(KeyError, match="Unknown task family"):
        get_family("nope")


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_config_and_task(name):
    family, config = sample(name, 3)
    assert sample(name, 3)[1] == config
    a, b = family.sample(np.random.default_rng(3)), family.sample(np.random.default_rng(3))
    assert a.name == b.name == config.name
    assert a.lr == b.lr and a.optimizer_kwargs == b.optimizer_kwargs
    names = {family.sample(np.random.default_rng(s)).name for s in range(10)}
    assert len(names) == 10  # a family never repeats a task in practice


def check_config(family: TaskFamily, config) -> None:
    assert config.family == family.name
    assert list(config.params) == list(family.space)
    for key, value in config.params.items():
        assert value in family.space[key], (key, value)
    run, space = config.run, family.run_space
    assert run.optimizer in space.optimizers
    assert run.lr_scale in space.lr_scale
    assert run.lr == pytest.approx(family.reference_lrs[run.optimizer] * run.lr_scale)
    if run.optimizer == "adamw":
        assert run.weight_decay in space.weight_decay
    else:
        assert run.weight_decay == 0.0
    assert space.budget.low <= run.total_steps <= space.budget.high
    assert run.total_steps % run.steps_per_action == 0
    assert space.decisions.low <= run.decisions <= space.decisions.high
    assert run.decisions == run.total_steps // run.steps_per_action
    n_train = family.n_train(config.params)
    assert run.batch_size in space.batch_sizes or run.batch_size == n_train
    assert 1 <= run.batch_size <= n_train


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**32 - 1))
def test_samples_lie_in_the_declared_ranges(name, seed):
    family, config = sample(name, seed)
    check_config(family, config)


def test_budget_and_decisions_cover_their_ranges():
    family = get_family("tabular-mlp")
    runs = [family.sample_config(np.random.default_rng(s)).run for s in range(400)]
    steps = np.array([r.total_steps for r in runs])
    decisions = np.array([r.decisions for r in runs])
    assert steps.min() < 130 and steps.max() > 2300
    assert decisions.min() <= 11 and decisions.max() >= 48
    assert 400 < np.median(steps) < 750  # log-uniform over 100-3000: median ~550
    assert {r.optimizer for r in runs} == set(OPTIMIZERS)
    scales = np.array([r.lr_scale for r in runs])
    assert scales.min() < 0.02 and scales.max() > 50
    assert np.median(np.abs(np.log10(scales))) < 1.3  # centred on the reference LR


def test_run_space_rounding_edges():
    rs = RunSpace()
    for seed in range(2000):
        run = rs.sample(np.random.default_rng(seed), {k: 1.0 for k in OPTIMIZERS}, 5)
        assert 100 <= run.total_steps <= 3000 and 10 <= run.decisions <= 50
        assert run.batch_size == 5  # capped by the training set


def test_domains():
    rng = np.random.default_rng(0)
    r = Range(16, 256, log=True, integer=True)
    values = [r.sample(rng) for _ in range(500)]
    assert all(isinstance(v, int) and v in r for v in values)
    assert min(values) < 20 and max(values) > 230
    assert 2.5 not in r and 300 not in r
    d = Range(0.1, 1.0, log=True, decimals=2)
    assert all(round(v, 2) == v and v in d for v in (d.sample(rng) for _ in range(200)))
    c = Choice((False, True))
    assert {c.sample(rng) for _ in range(50)} == {False, True}


@pytest.mark.parametrize("name", NAMES)
def test_task_is_a_picklable_task_whose_name_encodes_its_config(name):
    family, config = sample(name, 11)
    task = family.task(config)
    assert isinstance(task, Task) and task.family == name
    for key, value in config.params.items():
        shown = int(value) if isinstance(value, bool) else value
        shown = f"{shown:g}" if isinstance(shown, float) else str(shown)
        assert f"{key}={shown}" in task.name.split("/")[1].split(",")
    assert config.run.tag in task.name and task.name.startswith(f"{name}/")
    cls, kwargs = OPTIMIZERS[config.run.optimizer]
    assert task.optimizer is cls and task.lr == config.run.lr
    assert task.total_steps == config.run.total_steps
    assert task.steps_per_action == config.run.steps_per_action
    assert task.batch_size == config.run.batch_size
    assert set(kwargs) <= set(task.optimizer_kwargs)
    again = pickle.loads(pickle.dumps(task))
    assert again.name == task.name and again.data_fn() is task.data_fn()


@pytest.mark.parametrize("name", NAMES)
def test_models_fit_their_data(name):
    family = get_family(name)
    for seed in range(3):
        config = family.sample_config(np.random.default_rng(seed))
        task = family.task(config)
        data = task.data_fn()
        assert task.data_fn() is data  # cached per process
        assert len(data.train) == family.n_train(config.params)
        x, y = data.train.tensors
        torch.manual_seed(0)
        model = task.model_fn()
        out = model(x[:5])
        loss = task.loss_fn(model, (x[:5], y[:5]))
        assert torch.isfinite(loss)
        metrics = task.eval_fn(model.eval(), data.val, task, torch.device("cpu"))
        assert {"loss", task.metric} <= set(metrics)
        if task.metric == "accuracy":
            assert out.shape[0] == 5 and out.shape[1] > int(data.val.tensors[1].max())
        else:
            assert out.shape == (5, 1) and -1.0 <= metrics["r2"] <= 1.0


def test_dataset_sizes_match_the_loaded_data():
    for dataset, n in SKLEARN_EXAMPLES.items():
        data = sklearn_variant(dataset, 1.0, 0.0)
        assert (len(data.train), len(data.val), len(data.test)) == split_sizes(n)
        assert data.train.tensors[0].shape[1] == SHAPES[dataset][0]
        assert int(data.val.tensors[1].max()) + 1 <= SHAPES[dataset][1]
    for dataset, n in GEN_EXAMPLES.items():
        data = load_generated_data(dataset)
        assert len(data.train) + len(data.val) + len(data.test) == n
    assert len(markov_data(8).train) == split_sizes(GEN_EXAMPLES["seq"])[0]
    assert len(teacher.teacher_data(4, 0).train) == split_sizes(teacher.N_EXAMPLES)[0]
    seq = sequence_data.sequence_data("parity", 8)
    assert len(seq.train) == split_sizes(sequence_data.N_EXAMPLES)[0]


def test_data_variants_change_only_the_training_split():
    base = load_generated_data("waves")
    data = generated_variant("waves", 0.5, 0.2)
    n = train_size(GEN_EXAMPLES["waves"], 0.5)
    assert len(data.train) == n and data.val is base.val and data.test is base.test
    x, y = data.train.tensors
    bx, by = base.train.tensors
    assert x.data_ptr() == bx.data_ptr()  # a view: variants cost only their labels
    wrong = (y != by[:n]).sum().item()
    assert wrong == round(0.2 * n)
    assert generated_variant("waves", 0.5, 0.0).train.tensors[1].equal(by[:n])
    assert by.equal(base.train.tensors[1])  # the base labels were not modified
    y2 = noisy_labels(by[:n], 0.2, 4)
    assert y2.equal(y)  # noise is fixed by its configuration
    reg = vary(teacher.teacher_data(4, 0), 1.0, 0.3)
    clean = teacher.teacher_data(4, 0).train.tensors[1]
    assert 0.25 < (reg.train.tensors[1] - clean).std().item() < 0.35


def test_sequence_labels():
    x, y = sequence_task_arrays("parity", 8, n=200)
    assert x.shape == (200, 8, 1)
    assert np.array_equal(y, ((x[..., 0] > 0).sum(1) % 2))
    x, y = sequence_task_arrays("majority", 12, n=200)
    assert x.shape == (200, 12, 4) and np.array_equal(y, x.sum(1).argmax(1))
    x, y = sequence_task_arrays("adding", 16, n=200)
    assert x.shape == (200, 16, 2) and np.all(x[..., 1].sum(1) == 2)
    assert np.all(x[:, :8, 1].sum(1) == 1)  # one marker in each half
    total = (x[..., 0] * x[..., 1]).sum(1)
    assert np.array_equal(y, np.digitize(total, [0.5, 1.0, 1.5]))
    x, y = sequence_task_arrays("counting", 16, n=200)
    assert np.array_equal(y, np.digitize(x[..., 0].sum(1) / 16, [1 / 8, 1 / 4, 3 / 8]))
    for kind in sequence_data.SEQUENCE_TASKS:
        _, y = sequence_task_arrays(kind, 12)
        counts = np.bincount(y, minlength=sequence_data.N_CLASSES[kind])
        assert counts.min() > 0.05 * len(y), (kind, counts)  # no class is negligible
        a, _ = sequence_task_arrays(kind, 12, n=50)
        b, _ = sequence_task_arrays(kind, 12, n=50)
        assert np.array_equal(a, b)
    with pytest.raises(KeyError, match="Unknown sequence task"):
        sequence_task_arrays("copy", 8)


def test_regression_eval_r2():
    data = teacher.teacher_data(8, 1)
    x, y = data.val.tensors
    task = get_family("teacher-mlp").sample(np.random.default_rng(0))

    class Fixed(torch.nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, inp):
            return self.fn(inp)

    lookup = {tuple(row.tolist()): t for row, t in zip(x, y, strict=True)}
    perfect = Fixed(lambda inp: torch.stack([lookup[tuple(r.tolist())] for r in inp]))
    mean = Fixed(lambda inp: torch.full((len(inp), 1), y.mean().item()))
    awful = Fixed(lambda inp: torch.full((len(inp), 1), 100.0))
    cpu = torch.device("cpu")
    assert teacher.regression_eval(perfect, data.val, task, cpu)["r2"] == pytest.approx(1.0)
    assert teacher.regression_eval(mean, data.val, task, cpu)["r2"] == pytest.approx(0, abs=1e-6)
    res = teacher.regression_eval(awful, data.val, task, cpu)
    assert res["r2"] == -1.0 and math.isclose(res["loss"], ((y - 100) ** 2).mean().item(),
                                              rel_tol=1e-5)
    assert y.std().item() == pytest.approx(1.0, abs=0.15)  # standardised targets
