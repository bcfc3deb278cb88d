from __future__ import annotations

import json

import pytest

from agents.evaluation.store import RunStore, lr_tag, run_key


def _run(seed: int, controller: str = "static", **kw) -> dict:
    return {"env_id": "lr_gym/X-v1", "controller": controller, "seed": seed, **kw}


def test_add_persists_and_refuses_duplicates(tmp_path):
    store = RunStore(tmp_path / "runs.jsonl")
    assert store.add(_run(0)) and store.add(_run(1)) and store.add(_run(0, lr0=0.1))
    assert not store.add(_run(0))  # same key: nothing written twice
    again = RunStore(tmp_path / "runs.jsonl")
    assert len(again) == 3 and again.runs == store.runs
    assert run_key(_run(0)) in again and run_key(_run(2)) not in again
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 3


def test_keys_tell_agents_tuned_lrs_and_roles_apart():
    keys = {run_key(_run(0)), run_key(_run(0, lr0=0.1)), run_key(_run(0, role="target")),
            run_key(_run(0, controller="ppo", agent="a")),
            run_key(_run(0, controller="ppo", agent="b"))}
    assert len(keys) == 5
    assert lr_tag(None) == "default" and lr_tag(0.1) == lr_tag(0.1000)


def test_cut_off_and_corrupt_lines_are_redone(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(_run(0)) + "\nnot json\n" + json.dumps(_run(1))[:20])
    with pytest.warns(UserWarning) as record:
        store = RunStore(path)
    assert {str(w.message).split(":")[0] for w in record} == {str(path)}
    assert [r["seed"] for r in store.runs] == [0]
    assert store.add(_run(1))  # appended on a line of its own
    assert [json.loads(x)["seed"] for x in path.read_text().splitlines()
            if x.startswith("{")] == [0, 1]


def test_a_reader_beside_a_writer_leaves_the_line_being_written(tmp_path):
    path = tmp_path / "runs.jsonl"
    text = json.dumps(_run(0)) + "\n" + json.dumps(_run(1))[:20]
    path.write_text(text)
    assert [r["seed"] for r in RunStore(path, repair=False).runs] == [0]
    assert path.read_text() == text


@pytest.mark.parametrize("line", ["[1, 2]", "3", '"run"', "null", '{"env_id": "x"}',
                                  '{"env_id": "x", "controller": "c", "seed": "s"}',
                                  "[" * 100_000 + "]" * 100_000])
def test_valid_json_that_is_not_a_run_is_skipped_with_a_warning(tmp_path, line):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(_run(0)) + "\n" + line + "\n")
    with pytest.warns(UserWarning, match="not a run record"):
        store = RunStore(path)
    assert [r["seed"] for r in store.runs] == [0]


def test_a_line_that_is_not_utf8_is_redone_and_the_others_are_kept(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_bytes(json.dumps(_run(0)).encode() + b"\n\xff\xfe{\"seed\": \x80}\n"
                     + json.dumps(_run(1)).encode() + b"\n")
    with pytest.warns(UserWarning, match=rf"^{path}:2 is not UTF-8 text; skipped") as record:
        store = RunStore(path)
    assert len(record) == 1
    assert [r["seed"] for r in store.runs] == [0, 1]
    assert store.add(_run(2))  # the bad line stays; the run it held is done again
    with pytest.warns(UserWarning, match="is not UTF-8"):
        assert [r["seed"] for r in RunStore(path).runs] == [0, 1, 2]
