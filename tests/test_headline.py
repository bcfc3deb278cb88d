"""benchmarks/headline.py --check: README's first command against the committed table."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.headline import README_COMMAND, compare_tables, output_folder

ROOT = Path(__file__).resolve().parents[1]


def test_the_check_runs_readmes_first_command():
    first = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    assert first.strip().endswith(" ".join(README_COMMAND))


def test_output_folder_is_read_from_the_clis_last_line():
    out = "report...\nWrote report.md, table.md to logs/eval/test-1a2b in 12 s.\n"
    assert output_folder(out) == Path("logs/eval/test-1a2b")
    with pytest.raises(ValueError, match="Wrote"):
        output_folder("nothing here")


def test_compare_tables_is_empty_only_for_identical_text(tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("| ppo | 0.6645 |\n")
    b.write_text("| ppo | 0.6645 |\n")
    assert compare_tables(a, b) == []
    b.write_text("| ppo | 0.6990 |\n")
    diff = compare_tables(a, b)
    assert "-| ppo | 0.6990 |" in diff and "+| ppo | 0.6645 |" in diff


def _results(ps: dict[str, tuple[float, float, float]], cap: str) -> dict:
    agg = [{"controller": "ppo"}, *({"controller": c, "p_improvement": list(p)}
                                    for c, p in ps.items())]
    return {"meta": {"reproducibility": {"cpu_capability": cap}},
            "tracks": {"self": {"aggregate": agg}}}


def test_verdict_flips_follow_the_protocols_rule():
    from benchmarks.headline import verdict_flips

    committed = _results({"static": (0.7, 0.55, 0.85), "prodigy": (0.6, 0.45, 0.75)}, "AVX2")
    same_words = _results({"static": (0.66, 0.51, 0.8), "prodigy": (0.7, 0.5, 0.9)}, "AVX512")
    assert verdict_flips(same_words, committed) == []
    flipped = _results({"static": (0.65, 0.48, 0.8), "prodigy": (0.7, 0.5, 0.9)}, "AVX512")
    assert verdict_flips(flipped, committed) == [
        "self track: static: committed 'beats', this machine 'ties'"]


@pytest.mark.parametrize(("fresh_p", "rc", "said"), [
    ((0.66, 0.51, 0.8), 0, "Every verdict"),
    ((0.6, 0.45, 0.75), 1, "1 verdict(s) flip"),
])
def test_the_check_on_another_instruction_set_compares_verdicts(tmp_path, monkeypatch, capsys,
                                                                 fresh_p, rc, said):
    import json
    import subprocess

    import torch

    import benchmarks.headline as headline

    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    for folder, p, cap in ((committed, (0.7, 0.55, 0.85), "AVX2"), (fresh, fresh_p, "X")):
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(_results({"static": p}, cap)))
        (folder / "table.md").write_text(f"| static | {p[0]} |\n")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout=f"Wrote table.md to {fresh} in 1 s.\n", stderr=""))
    assert headline.check(committed) == rc
    out = capsys.readouterr()
    assert "CPU capability differs: " in out.out and "made on AVX2, this machine is AVX512" \
        in out.out
    assert said in out.out + out.err
