"""The core install (torch, numpy, safetensors, prodigyopt) deploys a controller.

Each test runs a fresh interpreter: the packages of the extras are made missing there
(``sys.modules[name] = None``, what an absent package looks like to ``import`` and
``importlib.util.find_spec``), so a heavy import added anywhere on the runtime's chain
fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EXTRAS_ONLY = (
    # [train], [eval]
    "gymnasium", "stable_baselines3", "yaml", "rich", "sklearn", "scipy", "rliable", "arch",
    "matplotlib", "pandas", "schedulefree", "dadaptation",
    # [seed-tasks]
    "transformers", "accelerate", "datasets", "pyarrow", "tokenizers", "torchvision",
    "torchcrf", "seqeval",
    # [lightning], [ray], [tensorboard]
    "lightning", "pytorch_lightning", "ray", "tensorboard",
)
"""Top-level modules of the extras' packages: none may be needed to deploy."""


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
        text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_a_controller_deploys_without_any_extra():
    out = _run(f"""
        import sys

        for name in {EXTRAS_ONLY!r}:
            sys.modules[name] = None  # missing, as in a core install

        import torch
        import torch.nn.functional as F
        from prodigyopt import Prodigy

        from lr_gym.control import LRController

        g = torch.Generator().manual_seed(0)
        x = torch.randn(256, 8, generator=g)
        y = (x[:, 0] - x[:, 1] > 0).long()
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                    torch.nn.Linear(16, 2))

        def evaluate():
            with torch.no_grad():
                logits = model(x[192:])
            return {{"val_loss": F.cross_entropy(logits, y[192:]).item(),
                     "val_metric": (logits.argmax(1) == y[192:]).float().mean().item()}}

        opt = Prodigy(model.parameters(), lr=1.0)
        ctl = LRController.from_pretrained(opt, "lr_gym/default", total_steps=40,
                                           steps_per_action=8, model=model)
        logged = []
        ctl.add_logger(lambda scalars, step: logged.append(scalars))
        ctl.observe(**evaluate())
        applied = []
        for t in range(40):
            idx = torch.arange(t * 16, t * 16 + 16) % 192
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            applied.append(opt.param_groups[0]["lr"])
            opt.step()
            ctl.step(loss)
            if ctl.eval_due:
                ctl.observe(**evaluate())
        decided = [lr for _, _, lr in ctl.history]
        assert len(decided) == 6, ctl.history  # the first decision and one per interval
        assert len(set(decided)) >= 3 and 1.0 not in decided, decided  # the LR moved
        assert applied[0] == decided[0] and applied[8] == decided[1]  # applied as decided
        assert logged[-1]["lr_controller/effective_lr"] > 0

        import lr_gym

        assert not lr_gym.HAS_ENVS
        try:
            lr_gym.TRAIN_MIX_ID
        except AttributeError as err:
            assert 'pip install -e ".[train]"' in str(err), err
        else:
            raise AssertionError("lr_gym.TRAIN_MIX_ID without gymnasium")
        print("deployed")
    """)
    assert out.strip() == "deployed"


def test_importing_the_runtime_imports_no_installed_extra():
    # Here the extras are installed: the runtime must still not import them (an optional
    # import caught on ImportError passes the test above, and costs seconds here).
    # gymnasium is the exception: with it, `import lr_gym` registers the envs.
    out = _run("""
        import sys

        import lr_gym.control

        print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
    """)
    loaded = set(out.split())
    assert "torch" in loaded and "lr_gym" in loaded  # the check can see what was imported
    assert loaded & set(EXTRAS_ONLY) <= {"gymnasium"}, loaded & set(EXTRAS_ONLY)


def test_import_lr_gym_with_gymnasium_registers_every_builtin_id():
    out = _run("""
        import json

        import gymnasium as gym

        assert not [i for i in gym.registry if i.startswith("lr_gym/")]
        import lr_gym
        from lr_gym.builtin_envs import BUILTIN_TASKS, BUILTIN_VERSIONS

        assert lr_gym.HAS_ENVS
        ids = {i for i in gym.registry if i.startswith("lr_gym/")}
        tasks = {f"lr_gym/{n}-v{BUILTIN_VERSIONS.get(n, 1)}" for n in BUILTIN_TASKS}
        print(json.dumps([len(tasks), sorted(tasks - ids), sorted(ids - tasks)]))
    """)
    n_tasks, unregistered, others = json.loads(out)
    assert n_tasks == 25 and unregistered == []
    assert others == [f"lr_gym/{name}" for name in (
        "DevFamilies-v1", "DevFamilies-v2", "DevFamilies-v3", "EmbeddedDev-v1",
        "EmbeddedMix-v1", "EmbeddedTest-v1", "TestFamilies-v1", "TrainFamilies-v1",
        "TrainFamilies-v2", "TrainFamilies-v3")]
