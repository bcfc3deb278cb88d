"""The built-in ``lr_gym/`` env ids, registered with Gymnasium on import.

:mod:`lr_gym` imports this module when gymnasium is installed (the ``[train]`` extra),
so ``import lr_gym`` registers every id; the core install (a deployed controller only)
has no envs and skips it. Registering builds no model and loads no data.
"""

from __future__ import annotations

from lr_gym.config import V2_ENV_KWARGS, V3_ENV_KWARGS
from lr_gym.registration import ENV_VERSION, register_mix, register_sampler, register_task
from lr_gym.splits import DEV, TEST, TRAIN

_E = "lr_gym.tasks.grids.embedded"
_G = "lr_gym.tasks.grids.generated"
# name -> task factory; ids are lr_gym/<name>-v1 (later versions: BUILTIN_VERSIONS).
# Which id is in which split (train, dev, test) is declared in lr_gym.splits.
BUILTIN_TASKS: dict[str, str] = {
    "Digits-MLP": f"{_E}:digits_mlp",
    "Wine-MLP": f"{_E}:wine_mlp",
    "BreastCancer-MLP": f"{_E}:cancer_mlp",
    "Digits-CNN": f"{_E}:digits_cnn_task",
    "Digits-CNN-Adam": f"{_E}:digits_cnn_adam",
    "Digits-CNN-LowLR": f"{_E}:digits_cnn_low_lr",
    "Spirals-ResMLP": f"{_G}:spirals_resmlp",
    "Spirals-ResMLP-Adam": f"{_G}:spirals_resmlp_adam",
    "Spirals-ResMLP-HighLR": f"{_G}:spirals_resmlp_high_lr",
    "Waves-Conv1D": f"{_G}:waves_conv1d",
    "Waves-Conv1D-Adam": f"{_G}:waves_conv1d_adam",
    "Seq-GRU": f"{_G}:seq_gru",
    "Seq-GRU-HighLR": f"{_G}:seq_gru_high_lr",
    "SQuADv2-RoBERTa": "lr_gym.tasks.seed.squad:squad_v2_roberta_full",
    "SQuADv2-RoBERTa-CPU": "lr_gym.tasks.seed.squad:squad_v2_roberta_cpu",
    "CoNLL2003-BiLSTMCRF": "lr_gym.tasks.seed.conll:conll2003_bilstm_crf_full",
    "CoNLL2003-BiLSTMCRF-CPU": "lr_gym.tasks.seed.conll:conll2003_bilstm_crf_cpu",
    "CIFAR10-ResNet18": "lr_gym.tasks.seed.cifar10:cifar10_resnet18_full",
    "CIFAR10-ResNet18-CPU": "lr_gym.tasks.seed.cifar10:cifar10_resnet18_cpu",
    "IMDB-BERT": "lr_gym.tasks.seed.imdb:imdb_bert_full",
    "IMDB-BERT-CPU": "lr_gym.tasks.seed.imdb:imdb_bert_cpu",
    # Fine-tune a real pretrained encoder (the `pretrained` extra: lr_gym.tasks.seed.pretrained).
    "IMDB-MiniLM-CPU": "lr_gym.tasks.seed.imdb:imdb_minilm_cpu",
    "SQuADv2-MiniLM-CPU": "lr_gym.tasks.seed.squad:squad_v2_minilm_cpu",
    # Task distribution v3: fine-tuning from procedurally pretrained weights (dev, test;
    # lr_gym.splits.FINETUNE_ENV_IDS, outside the splits' evaluation sets).
    "Digits-CNN-Finetune": "lr_gym.tasks.families.finetune:digits_cnn_finetune",
    "Waves-Conv1D-Finetune": "lr_gym.tasks.families.finetune:waves_conv1d_finetune",
}
BUILTIN_VERSIONS: dict[str, int] = {
    # v2: resized to its measured step cost (batch 16, 80 steps, smaller eval sets).
    "IMDB-MiniLM-CPU": 2,
    # v2: keeps 10% of the answer-less training windows (spans are learned in budget) and
    # tunes the no-answer threshold on validation; v3: resized to its measured step cost
    # (128-token windows, 120 steps, smaller eval sets); v4: lr0 3e-4 (chosen on
    # validation) and a random test subset instead of the first 400 questions.
    "SQuADv2-MiniLM-CPU": 4,
}
"""Built-in tasks whose id moved past ``ENV_VERSION`` (their env's Version History says why)."""
for _name, _ref in BUILTIN_TASKS.items():
    register_task(_ref, name=_name, version=BUILTIN_VERSIONS.get(_name, ENV_VERSION))

TRAIN_MIX_ID = register_mix("EmbeddedMix", f"{_E}:train_variants")
"""Default training env: every variant of the training families."""
DEV_MIX_ID = register_mix("EmbeddedDev", "lr_gym.splits:dev_variants")
"""Every variant of the dev families (for development choices; never for training)."""
TEST_MIX_ID = register_mix("EmbeddedTest", "lr_gym.splits:test_variants")
"""Every variant of the test families (final evaluation only)."""
TRAIN_FAMILIES_ID = register_sampler("TrainFamilies", TRAIN.sampled_families)
"""A fresh task of a training family every episode (broad training distribution)."""
DEV_FAMILIES_ID = register_sampler("DevFamilies", DEV.sampled_families)
"""A fresh task of a dev family every episode (for development choices; never training)."""
TEST_FAMILIES_ID = register_sampler("TestFamilies", TEST.sampled_families)
"""A fresh task of a test family every episode (final evaluation only)."""
# Task distribution v2 (controller v2): lr0 mixture, events, paired reward, v2 features;
# each (task, seed) serves 4 episodes so its reference run costs a quarter of one.
_V2 = {**V2_ENV_KWARGS, "lr_scale": "v2", "repeat": 4}  # named: nothing imported now
TRAIN_FAMILIES_V2_ID = register_sampler("TrainFamilies", TRAIN.sampled_families, version=2, **_V2)
"""The v2 training distribution (see :data:`lr_gym.config.V2_ENV_KWARGS`)."""
DEV_FAMILIES_V2_ID = register_sampler("DevFamilies", DEV.sampled_families, version=2, **_V2)
"""The v2 distribution over the dev families (for choices; never for training)."""
# Task distribution v3 (controller v3): v2's families plus the fine-tuning ones, under
# the v3 rule (a residual over the dev-chosen fixed decay of Prodigy's lr) and features.
_V3 = {**V3_ENV_KWARGS, "lr_scale": "v2", "repeat": 4}
TRAIN_FAMILIES_V3_ID = register_sampler("TrainFamilies", TRAIN.v3_sampled_families, version=3,
                                        **_V3)
"""The v3 training distribution (see :data:`lr_gym.config.V3_ENV_KWARGS`)."""
DEV_FAMILIES_V3_ID = register_sampler("DevFamilies", DEV.v3_sampled_families, version=3, **_V3)
"""The v3 distribution over the dev families (for choices; never for training)."""
