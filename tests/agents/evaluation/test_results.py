"""The helpers every benchmark's results file shares."""

from __future__ import annotations

import json
import warnings

from agents.evaluation.results import load_jsonl, meta, write_results


def test_meta_records_where_and_how_a_run_ran():
    m = meta(repeats=3)
    for key in ("date", "cpus", "torch_threads", "load_avg_1min", "torch", "python",
                "reproducibility"):
        assert key in m
    assert m["repeats"] == 3
    json.dumps(m)


def test_write_results_writes_json_and_its_table_beside_it(tmp_path):
    out, md = write_results(tmp_path / "x" / "bench.json", {"rows": [1.5]}, "| a |\n")
    assert json.loads(out.read_text()) == {"rows": [1.5]}
    assert md == tmp_path / "x" / "bench.md" and md.read_text() == "| a |\n"


def test_load_jsonl_skips_a_cut_line_and_leaves_the_file_alone(tmp_path):
    path = tmp_path / "runs.jsonl"
    text = '{"k": 1, "v": "a"}\n[1]\n{"k": 2, "v": "b"}\n{"k": 1, "v": "c"}\n{"k": 3,'
    path.write_text(text)
    with path.open("a") as writer:  # a process appending while another reads
        rows = load_jsonl(path, "k")
        assert rows == {1: {"k": 1, "v": "c"}, 2: {"k": 2, "v": "b"}}
        assert path.read_text() == text
    assert load_jsonl(tmp_path / "missing.jsonl", "k") == {}
    assert writer.closed


def test_a_repairing_load_lets_the_next_append_start_a_line_of_its_own(tmp_path):
    path = tmp_path / "runs.jsonl"
    for existing in ('{"k": 1}\n{"k": 2,', '{"k": 1}\n', ""):
        path.write_text(existing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the cut line is reported
            assert 2 not in load_jsonl(path, "k", repair=True)
        with path.open("a") as f:
            f.write('{"k": 3}\n')
        assert load_jsonl(path, "k")[3] == {"k": 3}
        assert path.read_text().count("\n\n") == 0
    assert load_jsonl(tmp_path / "new.jsonl", "k", repair=True) == {}
