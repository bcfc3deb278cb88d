from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray with 2 CPUs for every test that needs it (starting Ray takes seconds)."""
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "PYTHONPATH")}
    # No token file for a throwaway local cluster; workers import this checkout's code.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), saved["PYTHONPATH"]) if p)
    # A short folder: Ray's socket paths must stay under the OS's length limit.
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp" if os.path.isdir("/tmp") else None)
    from agents.common.ray_cluster import LOCAL_SYSTEM_CONFIG

    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False,
             logging_level=logging.WARNING, _system_config=LOCAL_SYSTEM_CONFIG)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
