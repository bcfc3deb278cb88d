"""Controllers: the learned PPO agent and hand-made baselines, laid out by job.

* :mod:`agents.baselines`: the :class:`~agents.baselines.base.Controller` interface,
  schedules, adaptive rules, LR-free optimizers, open-loop controls and
  :func:`~agents.baselines.make_baseline`;
* :mod:`agents.training`: PPO (:mod:`~agents.training.ppo`), its command line, SB3
  callbacks and the Ray vec env;
* :mod:`agents.evaluation`: rollouts, tuning, metrics, statistics, results and the
  evaluation protocol;
* :mod:`agents.controller`: a PPO run as a controller file (export) and resolving one;
  :mod:`agents.deploy` is the deployment API in one place;
* :mod:`agents.common`: run folders, folder locks, Ray clusters, gym packages, CLI help.

The flat modules of earlier releases (``agents.stats``, ``agents.ppo``, ...) still import
for one release: ``import agents.stats`` returns the module object of
:mod:`agents.evaluation.stats` itself (so monkeypatching either name patches both) and
warns once with a :class:`DeprecationWarning` naming the new path. A meta-path finder
rather than stub files: a stub would be a second module object and a file left in the tree.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED: dict[str, str] = {
    "agents.base": "agents.baselines.base",
    "agents.gala": "agents.baselines.gala",
    "agents.hypergradient": "agents.baselines.hypergradient",
    "agents.optimizer_baselines": "agents.baselines.optimizers",
    "agents.open_loop": "agents.baselines.open_loop",
    "agents.ppo": "agents.training.ppo",
    "agents.ray_vec_env": "agents.training.ray_vec_env",
    "agents.rollout": "agents.evaluation.rollout",
    "agents.tuning": "agents.evaluation.tuning",
    "agents.stats": "agents.evaluation.stats",
    "agents.metrics": "agents.evaluation.metrics",
    "agents.results": "agents.evaluation.results",
    "agents.runs": "agents.common.runs",
    "agents.folder_lock": "agents.common.folder_lock",
    "agents.ray_cluster": "agents.common.ray_cluster",
    "agents.packages": "agents.common.packages",
    "agents.help_format": "agents.common.help_format",
    "agents.extras": "agents.common.extras",
}
"""Old module name -> new module name (the old names go in the next release)."""


class _AliasLoader(importlib.abc.Loader):
    """Loads an old name as the new module itself (never a second copy)."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {self.new}; import it from there (the old path "
                      "goes in the next release)", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the alias's spec on the module: give it its own back.
        module.__spec__ = self.spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of :data:`MOVED`, and nothing else."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        return None if new is None else importlib.machinery.ModuleSpec(fullname,
                                                                       _AliasLoader(new))


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())
