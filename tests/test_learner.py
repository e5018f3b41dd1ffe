import io
import math

import numpy as np
import torch

from rnnlm.config import ModelConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.models import RecurrentLM
from rnnlm.train.learner import Learner
from rnnlm.evaluation.streams import evaluate_stream
from rnnlm.train.run import train

from conftest import tiny_config


def test_training_drives_loss_far_below_uniform(tiny_file):
    trained = train(tiny_config(str(tiny_file)), tiny_file.parent / "run", log=io.StringIO(), progress=False)
    learner, data = trained.learner, trained.data
    uniform = math.log(len(data.vocab))
    first, last = learner.history[0], learner.history[-1]
    assert last["train_loss"] < 0.5 * uniform
    assert last["valid_loss"] < 0.5 * uniform
    assert last["valid_loss"] < first["valid_loss"]
    assert [row["epoch"] for row in learner.history] == [1, 2, 3, 4]


def test_state_is_carried_between_batches():
    """With bptt 1 the only way to know what follows 'a' in 'aab aab ...' is the carried state."""
    torch.manual_seed(0)
    ids = np.array([0, 0, 1] * 400, dtype=np.uint8)
    model = RecurrentLM(2, ModelConfig(cell="gru", layers=1, emb=4, hidden=16, dropout=0.0))
    batches = StreamBatches(ids, bs=8, bptt=1)
    learner = Learner(model, batches, None, lr=3e-2)
    learner.fit(3, 3e-2)
    assert evaluate_stream(model, StreamBatches(ids, 8, 1), torch.device("cpu")).accuracy > 0.95


def test_fit_again_continues_the_same_optimiser():
    torch.manual_seed(0)
    ids = np.array([0, 1, 2, 3] * 200, dtype=np.uint8)
    model = RecurrentLM(4, ModelConfig(cell="gru", layers=1, emb=4, hidden=8, dropout=0.0))
    learner = Learner(model, StreamBatches(ids, 4, 8), StreamBatches(ids, 4, 8))
    opt = learner.optimizer
    learner.fit(1, 1e-2)
    learner.fit(1, 1e-3)
    assert learner.optimizer is opt and learner.epoch == 2
    assert learner.optimizer.param_groups[0]["lr"] == 1e-3
    assert [r["epoch"] for r in learner.history] == [1, 2]


def test_max_minutes_stops_early(tiny_file):
    config = tiny_config(str(tiny_file), epochs=50, max_minutes=1e-6)
    learner = train(config, tiny_file.parent / "run", log=io.StringIO(), progress=False).learner
    assert len(learner.history) == 1
