import json

import pytest
import torch

from rnnlm.device import set_threads
from rnnlm.errors import RnnlmError
from test_cli import TINY_MODEL, assert_usage_error, run_cli


@pytest.fixture(autouse=True)
def keep_threads():
    """--threads changes a process-wide setting; put it back for the tests that follow."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_prepare_then_train_and_evaluate_the_folder(tmp_path, tiny_file, capsys):
    code, out, err = run_cli(["prepare", str(tiny_file), "--out", str(tmp_path / "p"), "--level", "word"], capsys)
    assert code == 0, err
    assert "word level" in out and f"rnnlm train {tmp_path / 'p'}" in out
    code, out, err = run_cli(["train", str(tmp_path / "p"), *TINY_MODEL, "--out", str(tmp_path / "run"),
                              "--threads", "1"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["evaluate", str(tmp_path / "run"), "--json"], capsys)
    assert code == 0, err
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert json.loads(out)["loss"] == pytest.approx(history[-1]["valid_loss"], rel=1e-5)


@pytest.mark.parametrize("args,needle", [
    (["prepare", "{f}"], "required: --out"),
    (["prepare", "{d}/missing.txt", "--out", "{d}/p"], "no such file"),
    (["prepare", "{f}", "--out", "{f}"], "is a file"),
    (["prepare", "{f}", "--out", "{d}/p", "--min-freq", "100000"], "no token occurs"),
    (["train", "{f}", "--threads", "0"], "--threads must be >= 1"),
])
def test_prepare_and_threads_mistakes_exit_2(tmp_path, tiny_file, capsys, args, needle):
    argv = [a.format(d=tmp_path, f=tiny_file) for a in args]
    code, _, err = run_cli(argv, capsys)
    assert_usage_error(code, err, needle)
    assert not (tmp_path / "p").exists()


def test_set_threads():
    set_threads(1)
    assert torch.get_num_threads() == 1
    set_threads(None)
    assert torch.get_num_threads() == 1
    with pytest.raises(RnnlmError):
        set_threads(0)
