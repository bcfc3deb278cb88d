"""train_agent.py and evaluate_agent.py without their extra: one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.common.extras import EXTRAS, missing

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("script", "extra", "gone", "dist"), [
    ("train_agent.py", "train", "stable_baselines3", "stable-baselines3"),
    ("evaluate_agent.py", "eval", "rliable", "rliable"),
])
def test_a_script_without_its_extra_says_which_to_install(script, extra, gone, dist):
    code = (f"import runpy, sys; sys.modules[{gone!r}] = None; sys.argv = [{script!r}]; "
            f"runpy.run_path({script!r}, run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 1
    assert out.stderr == (f"{script} needs the [{extra}] extra ({dist} not installed): "
                          f"pip install -e \".[{extra}]\"\n")


def test_every_extra_listed_is_in_pyproject():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for extra, modules in EXTRAS.items():
        names = {d.split(">")[0].split("<")[0].split("[")[0] for d in extras[extra]}
        assert set(modules.values()) <= names, (extra, set(modules.values()) - names)
        assert missing(extra) == []  # here (the test install) every extra is there
