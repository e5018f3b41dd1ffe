"""A disk that fills while a run saves: the previous checkpoint survives whole, the command line
says so in one line (exit status 2), and the run resumes once there is room."""

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from rnnlm.atomic import WriteFailed, append_line, write_json
from rnnlm.cli import main
from rnnlm.runfolder import LAST, load_run, save_weights
from rnnlm.train.checkpoint import read_training_state

from conftest import TINY_TEXT


class HalfWritten:
    """A file whose disk fills halfway through the first write."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        self.real.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(name, after)``: writes of the file ``name`` fail once ``after`` of them went through."""
    real_fdopen = os.fdopen
    seen: dict[str, int] = {}
    failing: dict[str, int] = {}

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        if "w" not in mode:
            return f
        temporary = Path(os.readlink(f"/proc/self/fd/{fd}")).name  # .NAME.XXXX.tmp, beside NAME
        for name, after in failing.items():
            if temporary.startswith(f".{name}."):
                seen[name] = seen.get(name, 0) + 1
                if seen[name] > after:
                    return HalfWritten(f)
        return f

    monkeypatch.setattr(os, "fdopen", fdopen)
    return lambda name, after=0: failing.__setitem__(name, after)


def test_each_writer_keeps_the_old_file_when_the_disk_fills(tiny_run, tmp_path, full_disk):
    model = load_run(tiny_run, device="cpu").model
    old = {}
    for name, write in [("last.safetensors", lambda p: save_weights(p, model)),
                        ("config.json", lambda p: write_json(p, {"new": True})),
                        ("metrics.jsonl", lambda p: append_line(p, "{}"))]:
        path = tmp_path / name
        path.write_bytes(old.setdefault(name, (tiny_run / name).read_bytes()))
        full_disk(name)
        with pytest.raises(WriteFailed, match=f"cannot write {path} \\(No space left on device\\)"):
            write(path)
        assert path.read_bytes() == old[name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(old)  # no temporary file left


@pytest.mark.parametrize("name", ["last.safetensors", "model.safetensors", "train_state.safetensors",
                                  "metrics.jsonl", "loss.png"])
def test_training_stops_in_one_line_and_resumes_when_the_disk_fills(tmp_path, capsys, full_disk, name):
    text = tmp_path / "text.txt"
    text.write_text(TINY_TEXT[:1500])
    out = tmp_path / "run"
    argv = ["train", str(text), "--model", "gru", "--layers", "1", "--emb", "8", "--hidden", "16", "--bs", "4",
            "--bptt", "16", "--lr", "1e-2:3", "--device", "cpu", "--out", str(out)]
    full_disk(name, after=1)  # the first epoch saves; the second epoch's save fills the disk
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot write {out / name} (No space left on device); {out} keeps the state saved after epoch 1; " \
           f"make room, then continue with: rnnlm train --resume {out}" in err
    _, info, _ = read_training_state(out / "train_state.safetensors")
    assert (info["epoch"], info["batch"]) == (1, 0)
    for weights in ("model.safetensors", LAST):
        assert all(torch.isfinite(p).all() for p in load_run(out, weights, device="cpu").model.parameters())
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    full_disk(name, after=10**9)  # room again
    assert main(["train", "--resume", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_a_full_disk_before_anything_is_saved_leaves_nothing(tmp_path, capsys, full_disk):
    text = tmp_path / "text.txt"
    text.write_text(TINY_TEXT)
    full_disk("vocab.json")
    assert main(["train", str(text), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == f"rnnlm train: error: cannot write {tmp_path / 'run' / 'vocab.json'} (No space left on device)\n"
    assert not (tmp_path / "run").exists()
