"""Exact resume, crash safety (SIGKILL, SIGINT) and numerical safety of training runs."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnlm.cli import main
from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnlm.device import cpu_has_bf16
from rnnlm.errors import RnnlmError
from rnnlm.runfolder import load_run
from rnnlm.train.callbacks import Callback
from rnnlm.train.checkpoint import read_training_state
from rnnlm.train.result import TrainingInterrupted
from rnnlm.train.run import resume, train

from conftest import TINY_TEXT

SRC = str(Path(__file__).resolve().parents[1] / "src")
# Children run with this process's thread count, so their arithmetic matches bit for bit.
CHILD_ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def small_config(source, **train) -> RunConfig:
    """Two layers with dropout between them (so the RNG matters), 18 batches an epoch."""
    return RunConfig(
        DataConfig(source=str(source)),
        ModelConfig(cell="lstm", layers=2, emb=16, hidden=32, dropout=0.3),
        TrainConfig(**{"bs": 8, "bptt": 16, "epochs": 2, "lr": 1e-2, "seed": 3, "device": "cpu", **train}),
    )


class InterruptAt(Callback):
    """Acts like Ctrl-C once training reaches (completed epochs, batch of the next epoch)."""

    def __init__(self, epoch: int, batch: int):
        self.at = (epoch, batch)

    def on_batch_end(self, learner, loss):
        if (learner.epoch, learner.batch) == self.at:
            learner.interrupt()

    def on_epoch_end(self, learner, row):
        self.on_batch_end(learner, None)


def rows_without_time(folder):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "time"} for row in rows]


@pytest.mark.parametrize("train_options,stop", [
    ({}, (1, 5)),  # onecycle, stopped mid-epoch 2
    ({"phases": [(1e-2, 1), (3e-3, 1)]}, (1, 0)),  # manual phases, stopped between them
    ({"schedule": "sgdr", "epochs": 3}, (0, 7)),  # sgdr, stopped mid-epoch 1
    pytest.param({"precision": "bf16"}, (1, 5), marks=pytest.mark.skipif(not cpu_has_bf16(), reason="no bf16 CPU")),
])
def test_resume_gives_bitwise_the_weights_of_a_straight_run(tiny_file, tmp_path, train_options, stop):
    config = small_config(tiny_file, **train_options)
    straight = train(config, tmp_path / "straight", log=io.StringIO(), progress=False).folder

    with pytest.raises(TrainingInterrupted, match="interrupted (at|after) epoch .*; state saved in") as stopped:
        train(config, tmp_path / "resumed", callbacks=[InterruptAt(*stop)], log=io.StringIO(), progress=False)
    assert stopped.value.folder == tmp_path / "resumed" and stopped.value.world_size == 1
    _, info, _ = read_training_state(tmp_path / "resumed" / "train_state.safetensors")
    assert (info["epoch"], info["batch"]) == stop
    resumed = resume(tmp_path / "resumed", log=io.StringIO(), progress=False)
    folder, learner = resumed.folder, resumed.learner

    a, b = load_file(straight / "last.safetensors"), load_file(folder / "last.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    epochs = config.train.total_epochs
    assert [row["epoch"] for row in learner.history] == list(range(1, epochs + 1))
    assert rows_without_time(folder) == rows_without_time(straight)  # no epoch repeated or skipped


def test_resume_refuses_a_finished_run_and_foreign_options(tiny_run, capsys):
    with pytest.raises(RnnlmError, match="already finished after epoch 4"):
        resume(tiny_run)
    assert main(["train", "--resume", str(tiny_run), "--lr", "0.5", "--bs", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "drop --bs, --lr (only --max-minutes" in err


def test_resume_refuses_a_changed_corpus(tiny_file, tmp_path):
    with pytest.raises(TrainingInterrupted):
        train(small_config(tiny_file), tmp_path / "run", callbacks=[InterruptAt(0, 4)],
              log=io.StringIO(), progress=False)
    tiny_file.write_text(TINY_TEXT.replace("dog", "cat"))
    with pytest.raises(RnnlmError, match="changed since the run began"):
        resume(tmp_path / "run")


def test_damaged_training_state_is_refused(tiny_run, tmp_path):
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")
    data = (run / "train_state.safetensors").read_bytes()
    (run / "train_state.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(RnnlmError, match="damaged training state"):
        resume(run)


CHILD = """
from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from rnnlm.device import cpu_has_bf16
from rnnlm.train.callbacks import Callback
from rnnlm.train.run import train

class Progress(Callback):
    def on_batch_end(self, learner, loss):
        with open({progress!r}, "a") as f:
            f.write(f"{{learner.step}}\\n")

config = RunConfig(DataConfig({data!r}), ModelConfig(cell="gru", layers=1, emb=16, hidden=32, dropout=0.2),
                   TrainConfig(bs=8, bptt=16, epochs={epochs}, lr=1e-2, seed=5, device="cpu", save_every={every}))
train(config, {out!r}, callbacks=[Progress()], progress=False)
"""


def wait_for(predicate, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)


@pytest.mark.slow
def test_sigkill_mid_run_loses_at_most_save_every_batches(tiny_file, tmp_path):
    every, epochs, per_epoch = 3, 6, 18
    progress, out = tmp_path / "progress.txt", tmp_path / "run"
    script = CHILD.format(progress=str(progress), data=str(tiny_file), epochs=epochs, every=every,
                          out=str(out))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=CHILD_ENV)

    def steps():
        lines = progress.read_text().splitlines() if progress.exists() else []
        return int(lines[-1]) if lines else 0

    try:
        wait_for(lambda: steps() >= 2 * per_epoch + 7 or child.poll() is not None)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
    done = steps()
    assert done < epochs * per_epoch, "training finished before it was killed"

    load_run(out)  # the folder loads
    _, info, _ = read_training_state(out / "train_state.safetensors")
    assert 0 <= done - info["step"] <= every

    code = subprocess.run([sys.executable, "-m", "rnnlm", "train", "--resume", str(out)], capture_output=True,
                          text=True, env=CHILD_ENV).returncode
    assert code == 0
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # a write cut short is swept away
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == \
        list(range(1, epochs + 1))
    straight_config = RunConfig(
        DataConfig(str(tiny_file)), ModelConfig(cell="gru", layers=1, emb=16, hidden=32, dropout=0.2),
        TrainConfig(bs=8, bptt=16, epochs=epochs, lr=1e-2, seed=5, device="cpu"))
    straight = train(straight_config, tmp_path / "straight", log=io.StringIO(), progress=False).folder
    a, b = load_file(straight / "last.safetensors"), load_file(out / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_and_says_how_to_resume(stop, tiny_file, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", str(tiny_file), "--model", "gru", "--layers", "1", "--emb", "16", "--hidden", "32",
            "--bs", "8", "--bptt", "16", "--epochs", "1000", "--device", "cpu", "--out", str(out)]
    child = subprocess.Popen([sys.executable, "-m", "rnnlm", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=CHILD_ENV)
    try:
        metrics = out / "metrics.jsonl"
        wait_for(lambda: (metrics.exists() and metrics.read_text().count("\n") >= 2) or child.poll() is not None)
        child.send_signal(stop)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1].endswith(f"Resume with: rnnlm train --resume {out}")
    assert "Traceback" not in err
    _, info, _ = read_training_state(out / "train_state.safetensors")
    assert info["epoch"] >= 2 and info["stop_reason"] == "interrupt"

    assert main(["train", "--resume", str(out), "--max-minutes", "0.00001"]) == 0
    assert "resuming" in capsys.readouterr().out
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, info["epoch"] + 2))


def test_diverging_loss_stops_with_a_clear_message_and_keeps_the_last_good_state(tiny_file, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", str(tiny_file), "--model", "gru", "--layers", "1", "--emb", "16", "--hidden", "32",
                 "--bs", "8", "--bptt", "16", "--clip", "0", "--lr", "1e-2:1,1e37:1", "--device", "cpu",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "loss became inf at epoch 2, batch" in err or "loss became nan at epoch 2, batch" in err
    assert "saved after epoch 1" in err and "--lr" in err and "--clip" in err
    _, info, _ = read_training_state(out / "train_state.safetensors")
    assert (info["epoch"], info["batch"]) == (1, 0)
    run = load_run(out, device="cpu")
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
