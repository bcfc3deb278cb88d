"""The train / dev / test split of the built-in task families, declared in one place.

* **train**: the families controllers are trained on (``lr_gym/EmbeddedMix-v1``: the
  fixed variant grids; ``lr_gym/TrainFamilies-v1``: a fresh sampled task every episode).
* **dev**: families for choices made while developing controllers (env defaults,
  hyperparameters, ablations such as ``benchmarks/ablation.py``).
* **test**: families for the final evaluation only (the default set of
  ``evaluate_agent.py``). Nothing may be trained or tuned on them:
  :func:`refuse_split` is the guard scripts call.

A family has a fixed variant grid (:attr:`Family.module`), a sampler of fresh tasks
(:attr:`Family.sampler`, a :class:`~lr_gym.tasks.families.base.TaskFamily`), or both.

Every test family differs from every training family in both its data and its
architecture (see :data:`FAMILIES`), so a test score measures transfer to data and
models never trained on:

* train: MLPs on scikit-learn tables (``digits-mlp``, ``wine-mlp``, ``cancer-mlp``,
  sampled ``tabular-mlp``), MLP students of random teachers (``teacher-mlp``,
  regression) and transformer encoders on parity, majority and adding sequences
  (``seq-transformer``).
* dev: CNNs on digits (``digits-cnn``), residual MLPs on spirals (``spirals-resmlp``)
  and LSTMs on adding and counting sequences (``seq-lstm``). The LSTM is in dev, not
  train, because it is too close to the test split's GRU: a test score on ``seq-gru``
  would then measure a recurrent model already trained on.
* test: 1-D CNNs on waveforms (``waves-conv1d``) and GRUs classifying Markov-chain
  sequences (``seq-gru``): no training family has convolutions over time or
  recurrence, nor these data.

Task distribution v3 adds fine-tuning families (:mod:`lr_gym.tasks.families.finetune`),
each in one split's :attr:`Split.v3_families`, outside the v1/v2 samplers (whose
:attr:`Split.sampled_families` stay as they were, so their ids sample what they always
sampled); :attr:`Split.v3_sampled_families` is what a v3 sampler draws from, and
:attr:`Split.v3_env_ids` (:data:`FINETUNE_ENV_IDS`) are single-task ids of the dev and
test fine-tuning families, kept out of :attr:`Split.env_ids` (the evaluation sets):

* train: ``teacher-mlp-finetune``, ``digits-mlp-finetune`` (MLPs) and
  ``seq-transformer-finetune`` (the transformer encoder);
* dev: ``digits-cnn-finetune`` (``lr_gym/Digits-CNN-Finetune-v1``);
* test: ``waves-conv1d-finetune`` (``lr_gym/Waves-Conv1D-Finetune-v1``), on the test
  split's data and architecture like every test family.

Importing this module builds no model and loads no data; only :func:`split_of_env` on
an undeclared id resolves that id's task.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lr_gym.tasks.base import Task


@dataclass(frozen=True)
class Family:
    """What a task family trains: the split key is :attr:`name` (``Task.family``).

    Attributes:
        name: Family name, e.g. ``"digits-mlp"``.
        dataset: Data source, e.g. ``"sklearn-digits"`` or ``"generated-waves"``.
        architecture: Model kind, e.g. ``"mlp"``, ``"cnn2d"``, ``"conv1d"``, ``"gru"``.
        module: Module whose ``variants(name)`` builds the family's fixed variant grid,
            or None (a family that only samples).
        sampler: Import string ``"module:ATTR"`` of the family's
            :class:`~lr_gym.tasks.families.base.TaskFamily`, or None (a grid only).
    """

    name: str
    dataset: str
    architecture: str
    module: str | None = None
    sampler: str | None = None


@dataclass(frozen=True)
class Split:
    """A set of task families with their registered env ids and their mix.

    Attributes:
        name: ``"train"``, ``"dev"`` or ``"test"``.
        families: Names of the families in the split.
        env_ids: Registered single-task ids of the split's families (for ``test``:
            the default evaluation set).
        mix_id: Multi-task id over every variant of the split's families that have
            a variant grid.
        sampler_id: Id of the env that samples a fresh task of the split's sampling
            families every episode.
        reference_ids: The single-task ids at their reference lr0, without the
            variants that only scale it (``LowLR``, ``HighLR``): what an lr0 sweep or an
            LR-free base needs once each.
        v3_families: The families of :attr:`families` added by task distribution v3
            (fine-tuning): in no v1/v2 id (not in :attr:`sampled_families`).
        v3_env_ids: Single-task ids of the v3 families; not in :attr:`env_ids`, so the
            split's evaluation set is unchanged.
    """

    name: str
    families: tuple[str, ...]
    env_ids: tuple[str, ...]
    mix_id: str
    sampler_id: str
    reference_ids: tuple[str, ...] = ()
    v3_families: tuple[str, ...] = ()
    v3_env_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.reference_ids:  # every single-task id is at its reference lr0
            object.__setattr__(self, "reference_ids", self.env_ids)
        stray = [f for f in self.v3_families if f not in self.families]
        if stray:
            raise ValueError(f"Split {self.name!r}: v3_families {stray} are not in its "
                             "families; add them to families too.")
        both = set(self.v3_env_ids) & set(self.env_ids)
        if both:
            raise ValueError(f"Split {self.name!r}: {sorted(both)} are in env_ids and "
                             "v3_env_ids; keep v3 ids out of env_ids (the evaluation set).")

    @property
    def grid_families(self) -> tuple[str, ...]:
        """The families with a fixed variant grid (what :attr:`mix_id` samples from)."""
        return tuple(f for f in self.families if FAMILIES[f].module is not None)

    @property
    def sampled_families(self) -> tuple[str, ...]:
        """The v1/v2 families that sample tasks (what :attr:`sampler_id` samples from)."""
        return tuple(f for f in self.families
                     if FAMILIES[f].sampler is not None and f not in self.v3_families)

    @property
    def v3_sampled_families(self) -> tuple[str, ...]:
        """What a v3 sampler draws from: :attr:`sampled_families`, then :attr:`v3_families`."""
        return (*self.sampled_families, *self.v3_families)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every declared id of the split: the mix, the sampler and the single tasks."""
        return (self.mix_id, self.sampler_id, *self.env_ids, *self.v3_env_ids)


_EMB = "lr_gym.tasks.grids.embedded"
_GEN = "lr_gym.tasks.grids.generated"
_FAM = "lr_gym.tasks.families"
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("digits-mlp", "sklearn-digits", "mlp", _EMB),
        Family("wine-mlp", "sklearn-wine", "mlp", _EMB),
        Family("cancer-mlp", "sklearn-cancer", "mlp", _EMB),
        Family("tabular-mlp", "sklearn-tabular", "mlp", sampler=f"{_FAM}.tabular:TABULAR_MLP"),
        Family("teacher-mlp", "generated-teacher-regression", "mlp",
               sampler=f"{_FAM}.teacher:TEACHER_MLP"),
        Family("seq-transformer", "generated-sequences-parity-majority-adding",
               "transformer-encoder", sampler=f"{_FAM}.sequences:SEQ_TRANSFORMER"),
        Family("digits-cnn", "sklearn-digits", "cnn2d", _EMB,
               sampler=f"{_FAM}.tabular:DIGITS_CNN"),
        Family("spirals-resmlp", "generated-spirals", "resmlp-layernorm", _GEN,
               sampler=f"{_FAM}.generated:SPIRALS_RESMLP"),
        Family("seq-lstm", "generated-sequences-adding-counting", "lstm",
               sampler=f"{_FAM}.sequences:SEQ_LSTM"),
        Family("waves-conv1d", "generated-waves", "conv1d", _GEN,
               sampler=f"{_FAM}.generated:WAVES_CONV1D"),
        Family("seq-gru", "generated-markov-sequences", "gru", _GEN,
               sampler=f"{_FAM}.generated:SEQ_GRU"),
        # Task distribution v3: fine-tuning from pretrained weights.
        Family("teacher-mlp-finetune", "generated-teacher-regression", "mlp",
               sampler=f"{_FAM}.finetune:TEACHER_MLP_FINETUNE"),
        Family("digits-mlp-finetune", "sklearn-digits", "mlp",
               sampler=f"{_FAM}.finetune:DIGITS_MLP_FINETUNE"),
        Family("seq-transformer-finetune", "generated-sequences-majority-minority",
               "transformer-encoder", sampler=f"{_FAM}.finetune:SEQ_TRANSFORMER_FINETUNE"),
        Family("digits-cnn-finetune", "sklearn-digits", "cnn2d",
               sampler=f"{_FAM}.finetune:DIGITS_CNN_FINETUNE"),
        Family("waves-conv1d-finetune", "generated-waves", "conv1d",
               sampler=f"{_FAM}.finetune:WAVES_CONV1D_FINETUNE"),
    )
}
"""Every built-in family with its data source and architecture."""

_TRAIN_V3 = ("teacher-mlp-finetune", "digits-mlp-finetune", "seq-transformer-finetune")
TRAIN = Split(
    name="train",
    families=("digits-mlp", "wine-mlp", "cancer-mlp", "tabular-mlp", "teacher-mlp",
              "seq-transformer", *_TRAIN_V3),
    env_ids=("lr_gym/Digits-MLP-v1", "lr_gym/Wine-MLP-v1", "lr_gym/BreastCancer-MLP-v1"),
    mix_id="lr_gym/EmbeddedMix-v1",
    sampler_id="lr_gym/TrainFamilies-v1",
    v3_families=_TRAIN_V3,
)
DEV = Split(
    name="dev",
    families=("digits-cnn", "spirals-resmlp", "seq-lstm", "digits-cnn-finetune"),
    env_ids=(
        "lr_gym/Digits-CNN-v1",
        "lr_gym/Digits-CNN-Adam-v1",
        "lr_gym/Digits-CNN-LowLR-v1",
        "lr_gym/Spirals-ResMLP-v1",
        "lr_gym/Spirals-ResMLP-Adam-v1",
        "lr_gym/Spirals-ResMLP-HighLR-v1",
    ),
    mix_id="lr_gym/EmbeddedDev-v1",
    sampler_id="lr_gym/DevFamilies-v1",
    reference_ids=("lr_gym/Digits-CNN-v1", "lr_gym/Digits-CNN-Adam-v1",
                   "lr_gym/Spirals-ResMLP-v1", "lr_gym/Spirals-ResMLP-Adam-v1"),
    v3_families=("digits-cnn-finetune",),
    v3_env_ids=("lr_gym/Digits-CNN-Finetune-v1",),
)
TEST = Split(
    name="test",
    families=("waves-conv1d", "seq-gru", "waves-conv1d-finetune"),
    env_ids=(
        "lr_gym/Waves-Conv1D-v1",
        "lr_gym/Waves-Conv1D-Adam-v1",
        "lr_gym/Seq-GRU-v1",
        "lr_gym/Seq-GRU-HighLR-v1",
    ),
    mix_id="lr_gym/EmbeddedTest-v1",
    sampler_id="lr_gym/TestFamilies-v1",
    reference_ids=("lr_gym/Waves-Conv1D-v1", "lr_gym/Waves-Conv1D-Adam-v1",
                   "lr_gym/Seq-GRU-v1"),
    v3_families=("waves-conv1d-finetune",),
    v3_env_ids=("lr_gym/Waves-Conv1D-Finetune-v1",),
)
SPLITS: dict[str, Split] = {s.name: s for s in (TRAIN, DEV, TEST)}
"""The splits by name."""

V3_FAMILIES: dict[str, tuple[str, ...]] = {s.name: s.v3_families for s in SPLITS.values()}
"""The fine-tuning families task distribution v3 adds, per split."""
FINETUNE_ENV_IDS: dict[str, tuple[str, ...]] = {
    s.name: s.v3_env_ids for s in SPLITS.values() if s.v3_env_ids}
"""Single-task ids of the fine-tuning families, per split (dev and test): outside every
split's ``env_ids``, so the evaluation sets do not change."""

_PROTECTION = ("test", "dev", "train")  # a mix spanning splits counts as the most protected


def split_of_family(family: str) -> str | None:
    """The split name of a task family, or None for families outside the split."""
    return next((s.name for s in SPLITS.values() if family in s.families), None)


def split_of_env(env_id: str) -> str | None:
    """The split an env id belongs to, or None for ids outside the split.

    Declared ids, mixes and samplers answer from the declaration; any other
    ``lr_gym/`` id is resolved to its families (a sampler's from its spec, a task id's
    from its task(s), building no model and loading no data). An id spanning several
    splits gets the most protected one (test, then dev, then train).

    Raises:
        gymnasium.error.Error: ``env_id`` is not registered.
    """
    for s in SPLITS.values():
        if env_id in s.ids:
            return s.name
    import gymnasium as gym  # here: the core install (no gymnasium) imports this module

    from lr_gym.registration import NAMESPACE, tasks_for

    spec = gym.spec(env_id)  # unknown ids raise gymnasium's clear error
    if not env_id.startswith(f"{NAMESPACE}/"):
        return None
    if "families" in spec.kwargs:
        families = [getattr(f, "name", f) for f in spec.kwargs["families"]]
    else:
        families = [t.family for t in tasks_for(env_id)]
    found = {split_of_family(f) for f in families} - {None}
    return next((name for name in _PROTECTION if name in found), None)


def refuse_split(env_ids: Iterable[str], split: str = "test", what: str = "this") -> None:
    """Raises if any of ``env_ids`` belongs to ``split``: the guard of train/tune scripts.

    Args:
        env_ids: Env ids about to be used.
        split: The split they must not come from.
        what: What they are about to be used for, e.g. ``"training"``.

    Raises:
        ValueError: Naming the refused ids and what to use instead.
        KeyError: ``split`` is not a split name.
    """
    if split not in SPLITS:
        raise KeyError(f"Unknown split {split!r}; choose from {sorted(SPLITS)}.")
    bad = [e for e in env_ids if split_of_env(e) == split]
    if bad:
        others = [s for s in SPLITS.values() if s.name not in (split, "test")]
        instead = "; ".join(f"{s.name}: {', '.join(s.ids)}" for s in others)
        raise ValueError(
            f"{', '.join(map(repr, bad))} belong(s) to the {split} split (families "
            f"{', '.join(SPLITS[split].families)}), which must not be used for {what}. "
            f"Use ids of another split instead ({instead})."
        )


def family_variants(family: str) -> list[Task]:
    """The variant grid of a built-in family (imports the family's module).

    Raises:
        KeyError: Unknown family.
        ValueError: The family only samples tasks (use
            :func:`lr_gym.tasks.families.base.get_family`).
    """
    if family not in FAMILIES:
        raise KeyError(f"Unknown family {family!r}; choose from {sorted(FAMILIES)}.")
    module = FAMILIES[family].module
    if module is None:
        raise ValueError(f"Family {family!r} samples tasks and has no variant grid; draw "
                         "one with lr_gym.tasks.families.base.get_family(name).sample(rng).")
    return importlib.import_module(module).variants(family)


def split_variants(split: str) -> list[Task]:
    """Every variant of the grid families of ``split`` (what its mix id samples from)."""
    return [t for fam in SPLITS[split].grid_families for t in family_variants(fam)]


def dev_variants() -> list[Task]:
    """Every variant of the dev families (``lr_gym/EmbeddedDev-v1``)."""
    return split_variants("dev")


def test_variants() -> list[Task]:
    """Every variant of the test families (``lr_gym/EmbeddedTest-v1``)."""
    return split_variants("test")
