"""AWD-LSTM regularisation: each option really regularises in training and is gone in eval mode."""

import numpy as np
import pytest
import torch

from rnnlm.config import ModelConfig
from rnnlm.data.batching import StreamBatches
from rnnlm.models import RecurrentLM
from rnnlm.models.recurrent import LockedDropout
from rnnlm.train.learner import Learner


def model(**options) -> RecurrentLM:
    torch.manual_seed(0)
    base = dict(cell="lstm", layers=2, emb=8, hidden=16, dropout=0.0)
    return RecurrentLM(10, ModelConfig(**{**base, **options}))


def tokens(bs=4, seq=12):
    return torch.randint(0, 10, (bs, seq), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weight_dropout_drops_hidden_to_hidden_weights_in_training_only(cell):
    m = model(cell=cell, weight_dropout=0.5)
    plain = model(cell=cell)
    plain.load_state_dict(m.state_dict())
    raw = m.rnn.weight_hh_l0.detach().clone()
    x = tokens()

    m.train()
    logits, _ = m(x)
    logits.sum().backward()
    grad_hh, grad_ih = m.rnn.weight_hh_l0.grad, m.rnn.weight_ih_l0.grad
    assert 0.4 < (grad_hh == 0).float().mean().item() < 0.6  # dropped entries get no gradient
    assert (grad_ih == 0).float().mean().item() < 0.05
    assert torch.equal(m.rnn.weight_hh_l0, raw)  # the parameter itself stays whole
    assert not torch.allclose(m(x)[0], m(x)[0])  # a fresh mask each call

    m.eval()
    plain.eval()
    assert torch.equal(m(x)[0], plain(x)[0])


def test_embedding_dropout_drops_whole_tokens():
    m = model(emb_dropout=0.5)
    x = torch.arange(10).repeat(8, 3)  # every token, many times
    m.train()
    dropped = []
    for _ in range(20):
        m.zero_grad()
        m(x)[0].sum().backward()
        rows = m.embedding.weight.grad.abs().sum(1)
        dropped.append((rows == 0).float().mean().item())
    assert 0.35 < np.mean(dropped) < 0.65  # a token is dropped everywhere in the batch or nowhere
    m.eval()
    assert torch.equal(m(x)[0], m(x)[0])


def test_locked_dropout_keeps_one_mask_across_time():
    drop = LockedDropout(0.5).train()
    out = drop(torch.ones(6, 30, 40))
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert 0.4 < (out == 0).float().mean().item() < 0.6
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(drop.eval()(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_layer_by_layer_stack_computes_what_the_fused_stack_does(cell):
    """With --locked-dropout the stack runs one layer at a time; in eval mode, same numbers."""
    locked, fused = model(cell=cell, layers=3, locked_dropout=True, dropout=0.4), model(cell=cell, layers=3)
    weights = {}
    for i, layer in enumerate(locked.rnn):
        for name, tensor in layer.state_dict().items():
            weights[f"rnn.{name[:-1]}{i}"] = tensor
    fused.load_state_dict({**{k: v for k, v in locked.state_dict().items() if not k.startswith("rnn.")}, **weights})
    locked.eval()
    fused.eval()
    x1, x2 = tokens(), tokens(seq=5)
    a_logits, a_state = locked(x1)
    b_logits, b_state = fused(x1)
    torch.testing.assert_close(a_logits, b_logits)
    torch.testing.assert_close(locked(x2, a_state)[0], fused(x2, b_state)[0])  # the state carries over


def activations(learner, ids):
    x, _ = StreamBatches(ids, 4, 12).batch(0)
    learner.model.eval()
    with torch.no_grad():
        _, _, (raw, _) = learner.model(x, activations=True)
    return raw.pow(2).mean().item(), (raw[:, 1:] - raw[:, :-1]).pow(2).mean().item()


def test_ar_and_tar_shrink_the_activations_and_their_changes():
    ids = np.random.default_rng(0).integers(0, 10, 4000).astype(np.int64)
    results = {}
    for name, ar, tar in (("none", 0, 0), ("ar", 5.0, 0), ("tar", 0, 5.0)):
        learner = Learner(model(layers=1), StreamBatches(ids, 4, 12), None, ar=ar, tar=tar)
        learner.fit(1, 1e-2)
        results[name] = activations(learner, ids)
    assert results["ar"][0] < 0.5 * results["none"][0]
    assert results["tar"][1] < 0.5 * results["none"][1]


def test_weight_decay_is_decoupled_adamw():
    """A row of the embedding no token uses gets no gradient; only decoupled decay moves it."""
    ids = np.array([1, 2, 3] * 300, dtype=np.int64)
    m = model(layers=1)
    unused = m.embedding.weight[7].detach().clone()
    learner = Learner(m, StreamBatches(ids, 4, 10), None, lr=1e-2, wd=0.5)
    learner.fit(1, 1e-2)
    expected = unused * (1 - 1e-2 * 0.5) ** learner.step
    torch.testing.assert_close(m.embedding.weight[7].detach(), expected)
