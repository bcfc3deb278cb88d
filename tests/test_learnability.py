"""The learnability check's command line (its numbers: benchmarks/results/learnability)."""

from __future__ import annotations

from benchmarks.learnability import main


def test_a_second_writer_of_the_results_exits_at_once_naming_the_first(tmp_path, capsys):
    from tests.agents.test_folder_lock import Holder

    holder = Holder(tmp_path)  # another run appending to states.jsonl here
    try:
        assert main(["--states", "10", "--workers", "1", "--results", str(tmp_path)]) == 2
    finally:
        holder.release()
    assert capsys.readouterr().err == (
        f"error: {tmp_path} is being written by another process (PID {holder.proc.pid}: -c "
        f"{tmp_path} --a-flag); wait for it to finish, or pass another --results.\n")
    assert not (tmp_path / "states.jsonl").exists()


def test_too_few_states_are_refused(tmp_path, capsys):
    assert main(["--states", "3", "--results", str(tmp_path)]) == 2
    assert "--states must be >= 10" in capsys.readouterr().err
