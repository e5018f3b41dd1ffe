"""OneStep: one token for a batch of streams, the same as a call of the model, for every cell."""

import pytest
import torch

from rnnlm.config import ModelConfig
from rnnlm.models import RecurrentLM
from rnnlm.models.onestep import OneStep


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("locked", [False, True])
def test_one_step_is_the_models_step(cell, locked):
    torch.manual_seed(0)
    model = RecurrentLM(40, ModelConfig(cell=cell, layers=2, emb=16, hidden=32, locked_dropout=locked, tie=False)).eval()
    state = model.init_state(3)
    state = tuple(s.normal_() for s in state) if isinstance(state, tuple) else state.normal_()
    ids = torch.tensor([1, 5, 39])
    with torch.inference_mode():
        logits, expected = model(ids[:, None], state)
        got_logits, got = OneStep(model).step(ids, state)
    assert torch.allclose(got_logits, logits[:, 0], atol=1e-5)
    for a, b in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
