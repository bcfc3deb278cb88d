from __future__ import annotations

import itertools
import subprocess
import sys

import gymnasium as gym
import pytest

import lr_gym
from agents.baselines.base import ConstantAction
from agents.evaluation.rollout import run_episode
from lr_gym.splits import (
    DEV,
    FAMILIES,
    SPLITS,
    TEST,
    TRAIN,
    Split,
    refuse_split,
    split_of_env,
    split_of_family,
)
from tests.helpers import blob_task

SEED_TASK_PREFIXES = ("lr_gym/CIFAR10", "lr_gym/IMDB", "lr_gym/SQuAD", "lr_gym/CoNLL")
BUILTIN_IDS = [e for e in lr_gym.lr_gym_env_ids() if not e.startswith(SEED_TASK_PREFIXES)]
SHORT = {"total_steps": 30, "steps_per_action": 15}


def test_import_builds_and_loads_nothing_of_the_families():
    code = (
        "import sys, lr_gym\n"
        "assert lr_gym.TEST.env_ids and lr_gym.splits.FAMILIES\n"
        "for m in ('lr_gym.tasks.grids.embedded', 'lr_gym.tasks.grids.generated', 'sklearn',\n"
        "          'lr_gym.tasks.families', 'lr_gym.envs.sampled'):\n"
        "    assert m not in sys.modules, m\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_splits_are_disjoint():
    assert list(SPLITS) == ["train", "dev", "test"]
    assert SPLITS["train"] is TRAIN and SPLITS["dev"] is DEV and SPLITS["test"] is TEST
    for a, b in itertools.combinations(SPLITS.values(), 2):
        assert not set(a.families) & set(b.families), (a.name, b.name)
        assert not set(a.env_ids) & set(b.env_ids), (a.name, b.name)
        assert a.mix_id != b.mix_id and a.sampler_id != b.sampler_id
        assert not set(a.ids) & set(b.ids), (a.name, b.name)
    assert len(DEV.families) >= 2 and len(TEST.families) >= 2
    # Every declared family is in exactly one split, and every split family is declared.
    in_splits = [f for s in SPLITS.values() for f in s.families]
    assert sorted(in_splits) == sorted(FAMILIES)


def test_declared_ids_are_registered_and_run_their_splits_families():
    for s in SPLITS.values():
        assert s.mix_id in gym.registry
        for eid in s.env_ids:
            assert eid in gym.registry
            assert lr_gym.task_for(eid).family in s.families, eid
        mix_families = {t.family for t in lr_gym.tasks_for(s.mix_id)}
        assert mix_families == set(s.grid_families), s.name
        assert gym.spec(s.sampler_id).kwargs["families"] == s.sampled_families
        # Every family is reachable: through the mix's grid, the sampler or, for task
        # distribution v3's families, a v3 sampler (which the integration registers).
        assert set(s.grid_families) | set(s.sampled_families) | set(s.v3_families) == set(
            s.families)
        assert not set(s.v3_families) & set(s.sampled_families), s.name
        assert s.v3_sampled_families == (*s.sampled_families, *s.v3_families)
        assert len(s.sampled_families) >= 2, s.name
        for eid in s.v3_env_ids:
            assert eid in gym.registry and eid not in s.env_ids
            assert lr_gym.task_for(eid).family in s.v3_families, eid
    mix_ids = (lr_gym.TRAIN_MIX_ID, lr_gym.DEV_MIX_ID, lr_gym.TEST_MIX_ID)
    assert mix_ids == tuple(s.mix_id for s in SPLITS.values())
    sampler_ids = (lr_gym.TRAIN_FAMILIES_ID, lr_gym.DEV_FAMILIES_ID, lr_gym.TEST_FAMILIES_ID)
    assert sampler_ids == tuple(s.sampler_id for s in SPLITS.values())


def test_v3_declarations_are_checked():
    with pytest.raises(ValueError, match="not in its families"):
        Split("x", ("a",), (), "m", "s", v3_families=("b",))
    with pytest.raises(ValueError, match="keep v3 ids out of env_ids"):
        Split("x", ("a",), ("lr_gym/A-v1",), "m", "s", v3_env_ids=("lr_gym/A-v1",))
    declared = {s.name: s.v3_env_ids for s in SPLITS.values() if s.v3_env_ids}
    assert declared == lr_gym.splits.FINETUNE_ENV_IDS
    assert {s.name: s.v3_families for s in SPLITS.values()} == lr_gym.splits.V3_FAMILIES


def test_grid_only_and_sampled_only_families():
    assert lr_gym.splits.family_variants("digits-cnn")  # both: a grid and a sampler
    with pytest.raises(ValueError, match="samples tasks and has no variant grid"):
        lr_gym.splits.family_variants("tabular-mlp")


@pytest.mark.parametrize("env_id", BUILTIN_IDS)
def test_every_builtin_id_is_in_exactly_one_split(env_id):
    split = split_of_env(env_id)
    assert split in SPLITS
    if lr_gym.registration.is_sampler(env_id):
        families = set(gym.spec(env_id).kwargs["families"])
    else:
        families = {t.family for t in lr_gym.tasks_for(env_id)}
    assert {split_of_family(f) for f in families} == {split}


def test_seed_and_custom_tasks_are_in_no_split():
    assert split_of_env("lr_gym/CIFAR10-ResNet18-CPU-v1") is None
    assert split_of_family("custom") is None
    eid = lr_gym.register_task(blob_task(name="SplitBlobs"))
    assert split_of_env(eid) is None
    assert split_of_env("CartPole-v1") is None
    with pytest.raises(gym.error.Error):
        split_of_env("lr_gym/Nope-v1")


def test_custom_mix_with_a_test_task_counts_as_test():
    eid = lr_gym.register_mix("SplitsCustomMix", ["lr_gym/Digits-MLP-v1", TEST.env_ids[0]])
    assert split_of_env(eid) == "test"
    eid = lr_gym.register_mix("SplitsCustomMix2", ["lr_gym/Digits-MLP-v1", DEV.env_ids[0]])
    assert split_of_env(eid) == "dev"


def test_test_families_differ_from_every_train_family_in_data_and_architecture():
    for t, r in itertools.product(TEST.families, TRAIN.families):
        assert FAMILIES[t].dataset != FAMILIES[r].dataset, (t, r)
        assert FAMILIES[t].architecture != FAMILIES[r].architecture, (t, r)
        assert FAMILIES[t].dataset.startswith("generated-")
        assert FAMILIES[t].architecture not in ("mlp", "cnn2d")
    # The dev split also holds a family on data no training family has.
    train_data = {FAMILIES[f].dataset for f in TRAIN.families}
    assert any(FAMILIES[f].dataset not in train_data for f in DEV.families)


# Architectures close enough that training on one is not a held-out test of the other.
KIN = [{"gru", "lstm"}, {"mlp", "resmlp-layernorm"}, {"conv1d", "cnn2d"}]


def test_no_test_family_has_a_kin_of_a_train_family():
    def kin(arch):
        return set().union({arch}, *(group for group in KIN if arch in group))

    train_archs = {FAMILIES[f].architecture for f in TRAIN.families}
    for t in TEST.families:
        assert not kin(FAMILIES[t].architecture) & train_archs, t
    # The new sampled families are covered by the rule too.
    assert {"tabular-mlp", "teacher-mlp", "seq-transformer"} <= set(TRAIN.families)
    assert "seq-lstm" in DEV.families
    assert FAMILIES["seq-lstm"].architecture == "lstm"


def test_refuse_split_names_the_ids_and_the_alternatives():
    refuse_split(TRAIN.env_ids + DEV.env_ids + (TRAIN.mix_id, DEV.mix_id), "test")
    with pytest.raises(ValueError) as err:
        refuse_split(["lr_gym/Digits-MLP-v1", TEST.env_ids[1], TEST.mix_id], what="training")
    msg = str(err.value)
    assert repr(TEST.env_ids[1]) in msg and repr(TEST.mix_id) in msg
    assert "'lr_gym/Digits-MLP-v1'" not in msg.split("belong")[0]
    assert "training" in msg and TRAIN.mix_id in msg and DEV.mix_id in msg
    with pytest.raises(ValueError, match="dev split"):
        refuse_split([DEV.env_ids[0]], "dev")
    with pytest.raises(KeyError, match="Unknown split"):
        refuse_split([], "validation")


def test_default_eval_ids_are_the_test_split():
    assert not hasattr(lr_gym, "DEFAULT_EVAL_IDS") and not hasattr(lr_gym, "HELD_OUT_MIX_ID")
    assert len(TEST.env_ids) == 4
    for name in lr_gym.__all__:
        assert hasattr(lr_gym, name), name


def test_task_for_single_ids_and_mixes():
    task = lr_gym.task_for("lr_gym/Seq-GRU-HighLR-v1")
    assert task.family == "seq-gru" and task.lr == pytest.approx(1.0)
    assert lr_gym.task_for("lr_gym/Digits-MLP-v1").name == lr_gym.get_task("Digits-MLP").name
    with pytest.raises(ValueError, match="is a multi-task env; pass one of its task ids"):
        lr_gym.task_for(DEV.mix_id)
    with pytest.raises(gym.error.Error):
        lr_gym.task_for("lr_gym/Nope-v1")
    assert lr_gym.is_multi_task(TEST.mix_id) and not lr_gym.is_multi_task(TEST.env_ids[0])
    assert len(lr_gym.tasks_for(TEST.mix_id)) == 48
    assert [t.name for t in lr_gym.tasks_for(TEST.env_ids[0])] == [
        lr_gym.task_for(TEST.env_ids[0]).name]


def test_task_for_passes_task_kwargs():
    eid = lr_gym.register_task(lambda lr=0.1: blob_task(name="kw-blobs", lr=lr),
                               name="SplitsKwBlobs")
    assert lr_gym.task_for(eid, lr=0.02).lr == pytest.approx(0.02)


@pytest.mark.parametrize("env_id", ["lr_gym/Waves-Conv1D-v1", TEST.mix_id, TEST.sampler_id])
def test_run_episode_single_and_mix_ids(env_id):
    res = run_episode(env_id, ConstantAction(), 3, env_kwargs=SHORT)
    assert res.steps == [0, 15, 30] and res.task
    again = run_episode(env_id, ConstantAction(), 3, env_kwargs=SHORT)
    assert again.val_loss == res.val_loss and again.task == res.task


def test_mode_ablation_refuses_test_ids(capsys):
    from benchmarks import ablation as mode_ablation

    assert mode_ablation.check_envs(DEV.env_ids) is None
    assert "belong(s) to the test split" in mode_ablation.check_envs([TEST.env_ids[0]])
    assert mode_ablation.main(["--env", "lr_gym/Digits-CNN-v1", TEST.env_ids[2]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and TEST.env_ids[2] in err and "dev:" in err
    assert mode_ablation.build_parser().parse_args([]).env == list(DEV.env_ids)
    cmd = mode_ablation.evaluate_command(mode_ablation.ROOT / "run", DEV.env_ids, "out")
    assert cmd[1].endswith("evaluate_agent.py") and "--track" in cmd and "self" in cmd
