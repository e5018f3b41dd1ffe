import json

import pytest

from rnnlm.lessons import LESSONS_LIST

from test_cli import assert_usage_error, run_cli


def test_list_shows_every_lesson_with_its_number(capsys):
    code, out, _ = run_cli(["lesson", "--list"], capsys)
    assert code == 0
    for lesson in LESSONS_LIST:
        assert f"{lesson.name}  [seed {lesson.seeds}]" in out
    assert "seed's   accuracy 0.83" in out and "seed's   valid_loss 1.37-1.43" in out
    assert "SGDR from 0.01 (cycle_mult 2, saved at each cycle end)" in out


@pytest.mark.parametrize("argv, needle", [
    (["lesson"], "name the lessons to run, or give --all"),
    (["lesson", "CharLoopModle"], "did you mean CharLoopModel"),
    (["lesson", "--all", "Model5"], "not both"),
    (["lesson", "Model5", "--epochs-scale", "0"], "--epochs-scale must be > 0"),
    (["lesson", "CharRnn", "--nietzsche", "missing.txt"], "missing.txt: no such file"),
])
def test_mistakes_are_one_line_and_leave_nothing(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv + ["--out", "results"], capsys)
    assert_usage_error(code, err, needle)
    assert not (tmp_path / "results").exists()


def test_lessons_run_by_name_print_the_table_and_write_results(capsys, tmp_path):
    out_dir = tmp_path / "results"
    code, out, _ = run_cli(["lesson", "HIHELL", "rnn-shapes", "--out", str(out_dir), "--device", "cpu"], capsys)
    assert code == 0
    table = out[out.index("name "):].splitlines()
    assert table[0].split() == ["name", "metric", "rnnlm", "seed", "time"]
    assert table[2].split()[:4] == ["hihell", "prediction", "ihello", "ihello"]
    assert table[3].split()[:2] == ["rnn-shapes", "shapes"]
    saved = json.loads((out_dir / "results.json").read_text())
    assert [r["name"] for r in saved["results"]] == ["hihell", "rnn-shapes"]
    assert "CPU cores" in saved["machine"]
    assert "| hihell | prediction | ihello | ihello |" in (out_dir / "results.md").read_text()
    code, _, err = run_cli(["lesson", "hihell", "--out", str(out_dir)], capsys)
    assert_usage_error(code, err, "already holds lesson results")
