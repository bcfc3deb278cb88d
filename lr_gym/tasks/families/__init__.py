"""Built-in task families that sample a fresh task per draw (see :mod:`lr_gym.tasks.families.base`).

* :mod:`~lr_gym.tasks.families.tabular`: MLPs on scikit-learn tables (``tabular-mlp``,
  train) and CNNs on 8x8 digits (``digits-cnn``, dev).
* :mod:`~lr_gym.tasks.families.teacher`: teacher-student regression (``teacher-mlp``,
  train).
* :mod:`~lr_gym.tasks.families.sequences`: a transformer encoder (``seq-transformer``,
  train) and an LSTM (``seq-lstm``, dev) on generated algorithmic sequences.
* :mod:`~lr_gym.tasks.families.generated`: samplers of the generated-data families
  (``spirals-resmlp``, dev; ``waves-conv1d`` and ``seq-gru``, test).
* :mod:`~lr_gym.tasks.families.finetune`: fine-tuning from procedurally pretrained
  weights, task distribution v3 (``teacher-mlp-finetune``, ``digits-mlp-finetune``,
  ``seq-transformer-finetune``, train; ``digits-cnn-finetune``, dev;
  ``waves-conv1d-finetune``, test).

Which family is in which split is declared in :mod:`lr_gym.splits`; resolve one by
name with :func:`lr_gym.tasks.families.base.get_family`. Nothing here is imported by
``import lr_gym``.
"""
