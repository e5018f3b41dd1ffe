import io
import math

import numpy as np
import pytest
import torch

from rnnlm.cli import main
from rnnlm.config import ModelConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.errors import RnnlmError
from rnnlm.models import RecurrentLM
from rnnlm.train.learner import Learner
from rnnlm.train.lr_find import find_lr, lr_find
from rnnlm.train.run import train

from conftest import tiny_config

PNG = b"\x89PNG\r\n\x1a\n"


def tiny_learner(seed=0):
    torch.manual_seed(seed)
    ids = np.array([0, 1, 2, 3, 2, 1] * 300, dtype=np.int64)
    m = RecurrentLM(4, ModelConfig(cell="gru", layers=1, emb=4, hidden=16, dropout=0.2))
    return Learner(m, StreamBatches(ids, 8, 10), StreamBatches(ids, 8, 10))


def test_sweep_finds_the_valley_before_the_blow_up():
    finding = lr_find(tiny_learner(), start=1e-6, end=1e3, batches=80)
    assert finding.diverged  # 1e3 is far too much for Adam
    assert finding.lrs == sorted(finding.lrs)
    assert min(finding.smoothed) < 0.6 * finding.smoothed[0]  # the loss fell on the way
    assert finding.lrs[0] < finding.suggested_lr < finding.best_lr < finding.lrs[-1]
    assert finding.best_lr == pytest.approx(10 * finding.suggested_lr)
    lowest = min(range(len(finding.smoothed)), key=finding.smoothed.__getitem__)
    assert finding.smoothed[-1] > finding.smoothed[lowest]  # it went back up after the minimum


def same_weights(a, b):
    return all(torch.equal(p, b.model.state_dict()[name]) for name, p in a.model.state_dict().items())


def test_sweep_leaves_the_learner_as_it_found_it():
    swept, untouched = tiny_learner(), tiny_learner()
    for learner in (swept, untouched):
        torch.manual_seed(1)
        learner.fit(1, 1e-2)
    torch.manual_seed(7)
    lr_find(swept, batches=30)
    after_sweep = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(torch.rand(3), after_sweep)  # the RNG state is put back too
    assert same_weights(swept, untouched)
    assert swept.optimizer.param_groups[0]["lr"] == untouched.optimizer.param_groups[0]["lr"]
    for learner in (swept, untouched):
        torch.manual_seed(2)
        learner.fit(1, 1e-3)
    assert same_weights(swept, untouched)  # and training goes on as if there had been no sweep


def test_bad_sweep_settings_are_refused():
    with pytest.raises(RnnlmError, match="start must be") as error:
        lr_find(tiny_learner(), start=1.0, end=0.1)
    assert error.value.field == "start"
    with pytest.raises(RnnlmError, match="batches must be") as error:
        lr_find(tiny_learner(), batches=1)
    assert error.value.field == "batches"


def test_find_lr_from_config_suggests_a_rate_that_trains(tiny_file):
    finding = find_lr(tiny_config(str(tiny_file)), batches=60, end=100.0)
    assert 1e-5 < finding.suggested_lr < 1.0
    trained = train(tiny_config(str(tiny_file), lr=finding.suggested_lr, epochs=3, schedule="constant"),
                    tiny_file.parent / "run", log=io.StringIO(), progress=False)
    learner, data = trained.learner, trained.data
    assert learner.history[-1]["valid_loss"] < 0.5 * math.log(len(data.vocab))


def test_cli_prints_a_rate_writes_the_plot_and_nothing_else(tiny_file, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(["lr-find", str(tiny_file), "--model", "gru", "--layers", "1", "--emb", "8", "--hidden", "16",
                 "--bs", "8", "--bptt", "16", "--batches", "40", "--device", "cpu", "--plot", "sweep.png"])
    out = capsys.readouterr().out
    assert code == 0
    assert "suggested lr: " in out
    float(out.split("suggested lr: ")[1].split()[0])
    assert [p.name for p in work.iterdir()] == ["sweep.png"]
    assert (work / "sweep.png").read_bytes()[:8] == PNG
