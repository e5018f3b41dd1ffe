"""Built-in callbacks, manual phases, and the training options of the command line."""

import hashlib
import io
import json
import math
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnlm.cli import main
from rnnlm.config import ModelConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.models import RecurrentLM
from rnnlm.train.callbacks import Callback, EarlyStopping
from rnnlm.train.learner import Learner
from rnnlm.train.run import train
from rnnlm.train.schedules import is_sgdr_cycle_end

from conftest import tiny_config

TINY = ["--model", "gru", "--layers", "1", "--emb", "8", "--hidden", "16", "--bs", "8", "--bptt", "16",
        "--device", "cpu"]


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def small_learner():
    torch.manual_seed(0)
    ids = np.array([0, 1, 2, 3] * 200, dtype=np.int64)
    model = RecurrentLM(4, ModelConfig(cell="gru", layers=1, emb=4, hidden=8, dropout=0.0))
    return Learner(model, StreamBatches(ids, 4, 8), StreamBatches(ids, 4, 8))


def test_fit_again_continues_optimiser_state_and_epoch_numbers():
    learner = small_learner()
    learner.fit(2, 1e-2)
    steps = learner.optimizer.state_dict()["state"][0]["step"].item()
    learner.fit(1, 1e-3)
    assert learner.optimizer.state_dict()["state"][0]["step"].item() == steps + learner.batches_per_epoch
    assert [r["epoch"] for r in learner.history] == [1, 2, 3]
    assert [r["lr"] for r in learner.history] == [1e-2, 1e-2, 1e-3]
    assert learner.phase.start_epoch == 2


def test_cli_phases_run_one_after_the_other(tiny_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny_file), *TINY, "--lr", "1e-2:2,1e-3:1", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["lr"]) for r in rows] == [(1, 1e-2), (2, 1e-2), (3, 1e-3)]
    config = json.loads((out / "config.json").read_text())["train"]
    assert config["phases"] == [[1e-2, 2], [1e-3, 1]] and config["schedule"] == "constant"
    assert config["epochs"] == 3
    assert capsys.readouterr().out.count("train_loss") == 1  # one table across phases


@pytest.mark.parametrize("args,needle", [
    (["--lr", "1e-3:x"], "is not RATE:EPOCHS"),
    (["--lr", "fast"], "not a rate or RATE:EPOCHS"),
    (["--lr", "1e-3:0"], "whole number of epochs >= 1"),
    (["--lr", "0:2"], "--lr must be > 0"),
    (["--lr", "1e-3:2", "--epochs", "3"], "--epochs conflicts with --lr phases"),
    (["--patience", "0"], "--patience must be >= 1"),
    (["--save-every", "0"], "--save-every must be >= 1"),
    (["--weight-dropout", "1"], "--weight-dropout must be in [0, 1)"),
    (["--emb-dropout", "-0.1"], "--emb-dropout must be in [0, 1)"),
    (["--ar", "-1"], "--ar must be >= 0"),
    (["--resume", "{d}/nothing"], "no such run folder"),
])
def test_training_option_mistakes_exit_2_with_one_line(tmp_path, tiny_file, capsys, args, needle):
    argv = ["train", *[a.format(d=tmp_path) for a in args]]
    if "--resume" not in args:
        argv[1:1] = [str(tiny_file)]
        argv += ["--out", str(tmp_path / "run")]
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "run").exists()


def test_early_stopping_waits_patience_epochs():
    learner = small_learner()
    stopper = EarlyStopping(patience=2)
    for epoch, loss in enumerate([3.0, 2.0, 2.5, 1.9, 2.2], 1):
        stopper.on_epoch_end(learner, {"epoch": epoch, "valid_loss": loss})
        assert learner.stop_reason is None
    stopper.on_epoch_end(learner, {"epoch": 6, "valid_loss": math.nan})
    assert learner.stop_reason == "patience"


def test_patience_stops_a_run_that_no_longer_improves(tiny_file, tmp_path):
    config = tiny_config(str(tiny_file), epochs=30, lr=0.3, schedule="constant", patience=1)
    learner = train(config, tmp_path / "run", log=io.StringIO(), progress=False).learner
    assert learner.stop_reason == "patience" and len(learner.history) < 30
    assert learner.history[-1]["valid_loss"] >= min(r["valid_loss"] for r in learner.history[:-1])


def test_sgdr_saves_weights_at_each_cycle_end(tiny_file, tmp_path):
    assert [n for n in range(1, 16) if is_sgdr_cycle_end(n, 1, 2)] == [1, 3, 7, 15]
    assert [n for n in range(1, 10) if is_sgdr_cycle_end(n, 2, 1)] == [2, 4, 6, 8]
    config = tiny_config(str(tiny_file), epochs=3, schedule="sgdr", cycle_len=1, cycle_mult=2)
    folder = train(config, tmp_path / "run", log=io.StringIO(), progress=False).folder
    assert sorted(p.name for p in folder.glob("cycle_*")) == ["cycle_1.safetensors", "cycle_2.safetensors"]
    first, second = load_file(folder / "cycle_1.safetensors"), load_file(folder / "cycle_2.safetensors")
    last = load_file(folder / "last.safetensors")
    assert all(torch.equal(second[k], last[k]) for k in last)
    assert not all(torch.equal(first[k], last[k]) for k in last)


class PlotWatcher(Callback):
    """Notes the loss plot's bytes after each epoch (it runs after the plot callback)."""

    def __init__(self, path):
        self.path, self.digests = path, []

    def on_epoch_end(self, learner, row):
        self.digests.append(hashlib.sha256(self.path.read_bytes()).hexdigest())


def test_loss_plot_is_redrawn_every_epoch(tiny_file, tmp_path):
    out = tmp_path / "run"
    watcher = PlotWatcher(out / "loss.png")
    learner = train(tiny_config(str(tiny_file), epochs=3), out, callbacks=[watcher], log=io.StringIO(),
                    progress=False).learner
    assert len(set(watcher.digests)) == 3
    assert png_size(out / "loss.png") == (880, 605)
    plot = next(cb for cb in learner.callbacks if type(cb).__name__ == "LossPlot")
    assert len(plot.train) >= 3 * 10 and len(plot.valid) == 3  # ten train points an epoch at least
    tokens = [t for t, _ in plot.train]
    assert tokens == sorted(tokens) and tokens[-1] == learner.tokens_seen
