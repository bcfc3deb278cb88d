"""One writer per folder, across processes: a second is refused naming the first's PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agents.common.folder_lock import LOCK_FILE, FolderBusyError, hold_folder, lock_holder

ROOT = Path(__file__).resolve().parents[3]

_HOLDER = """
import sys
from agents.common.folder_lock import hold_folder
with hold_folder(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


class Holder:
    """Another process that holds ``folder`` until :meth:`release` (or a SIGKILL)."""

    def __init__(self, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(folder), "--a-flag"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.proc.stdin.close()


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    holder = Holder(tmp_path / "out")
    try:
        with pytest.raises(FolderBusyError) as err, hold_folder(tmp_path / "out", "pass -o"):
            pass
        message = str(err.value)
        assert message == (f"{tmp_path / 'out'} is being written by another process (PID "
                           f"{holder.proc.pid}: -c {tmp_path / 'out'} --a-flag); pass -o.")
        assert lock_holder(tmp_path / "out") == (holder.proc.pid, f"-c {tmp_path / 'out'} --a-flag")
    finally:
        holder.release()
    with hold_folder(tmp_path / "out"):  # released: the folder is free again
        assert lock_holder(tmp_path / "out")[0] == os.getpid()


def test_a_killed_writers_lock_is_taken_over(tmp_path):
    holder = Holder(tmp_path / "out")
    holder.kill()  # SIGKILL: no cleanup ran, the lock file still names it
    assert lock_holder(tmp_path / "out")[0] == holder.proc.pid
    with hold_folder(tmp_path / "out") as folder:
        assert folder == tmp_path / "out"
        assert lock_holder(folder)[0] == os.getpid()  # ours now, its PID replaced
    assert (tmp_path / "out" / LOCK_FILE).is_file()  # never deleted (see the module)


def test_a_cache_writer_waits_for_the_holder_then_goes_on(tmp_path, capsys):
    holder = Holder(tmp_path / "cache")
    got = threading.Event()

    def wait_for_it():
        with hold_folder(tmp_path / "cache", wait=True):
            got.set()

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    assert not got.wait(0.5)  # still held by the other process
    holder.release()
    waiter.join(timeout=60)
    assert got.is_set()
    assert f"waiting for PID {holder.proc.pid}" in capsys.readouterr().err


def test_one_process_twice_is_refused_too(tmp_path):
    # flock belongs to the open file: a second open in the same process is another writer.
    with (hold_folder(tmp_path), pytest.raises(FolderBusyError, match=f"PID {os.getpid()}"),
          hold_folder(tmp_path)):
        pass


def test_an_unreadable_lock_file_names_no_pid():
    assert lock_holder("/nonexistent/folder") == (None, "")
