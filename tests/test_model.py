import pytest
import torch

from rnnlm.config import ModelConfig
from rnnlm.models import RecurrentLM, detach_state


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_state_carried_across_chunks_equals_one_pass(cell):
    torch.manual_seed(0)
    model = RecurrentLM(11, ModelConfig(cell=cell, layers=2, emb=8, hidden=12, dropout=0.0)).eval()
    x = torch.randint(0, 11, (3, 10))
    full, _ = model(x)
    first, state = model(x[:, :4])
    second, _ = model(x[:, 4:], detach_state(state))
    assert full.shape == (3, 10, 11)
    torch.testing.assert_close(torch.cat([first, second], 1), full)
    fresh, _ = model(x[:, 4:])
    assert not torch.allclose(fresh, second)  # the carried state matters


def test_tied_weights_share_one_matrix():
    model = RecurrentLM(20, ModelConfig(emb=16, hidden=16, tie=True))
    assert model.head.weight is model.embedding.weight


def test_initial_state_shapes():
    lstm = RecurrentLM(5, ModelConfig(cell="lstm", layers=3, hidden=7))
    h, c = lstm.init_state(4)
    assert h.shape == c.shape == (3, 4, 7)
    assert RecurrentLM(5, ModelConfig(cell="gru", layers=2, hidden=7)).init_state(4).shape == (2, 4, 7)
