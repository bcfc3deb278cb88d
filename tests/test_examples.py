"""Each deployment face's example runs offline and logs every decision to TensorBoard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
@pytest.mark.parametrize(("face", "decisions"), [
    ("torch_scheduler", 19),  # the first decision, then one per interval: 270 / 15 after warmup
    ("hf_trainer", 21),  # the untrained model, then one per interval: 300 / 15
    ("lightning", 21),
])
def test_face_example_runs_and_logs_decisions(face, decisions, tmp_path):
    if face == "lightning":
        pytest.importorskip("lightning", reason='pip install -e ".[lightning]"')
    proc = _run(f"examples/deploy_{face}.py", "--logdir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert f"decisions: {decisions}," in proc.stdout
    assert f"tensorboard --logdir {tmp_path}" in proc.stdout
    fig = tmp_path / "tb.png"
    proc = _run("benchmarks/tensorboard_figure.py", str(tmp_path), "-o", str(fig))
    assert proc.returncode == 0, proc.stderr
    assert fig.stat().st_size > 10_000


def test_figure_without_controller_scalars_is_a_clear_error(tmp_path):
    proc = _run("benchmarks/tensorboard_figure.py", str(tmp_path), "-o", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert "no lr_controller/* scalars" in proc.stderr and "run an example" in proc.stderr
