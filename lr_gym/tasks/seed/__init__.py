"""The seed tasks: real datasets and models (CIFAR-10, IMDB, SQuAD v2, CoNLL-2003).

Each module has one builder and its presets (:mod:`~lr_gym.tasks.seed.common`);
data come from local files or the HF hub (:mod:`~lr_gym.tasks.seed.data`).
"""
