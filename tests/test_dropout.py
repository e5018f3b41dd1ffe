"""Dropout from random bits (rnnlm.models.dropout): the share kept, the scale, the gradient, and
where it is the identity."""

from dataclasses import replace

import pytest
import torch

from rnnlm.models.dropout import LEVELS, Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_it_keeps_about_one_minus_p_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    x = torch.ones(401, 997)  # an odd count: the last 32-bit draw's second half is left over
    out = dropout(x, p)
    kept = out != 0
    keep = round((1 - p) * LEVELS)
    assert abs(kept.float().mean().item() - keep / LEVELS) < 0.005
    assert torch.allclose(out[kept], torch.full_like(out[kept], LEVELS / keep))
    assert abs(out.mean().item() - 1.0) < 0.01
    rows = kept.float().mean(1)  # no stripes: every row keeps about the same share
    assert rows.min().item() > 1 - p - 0.06 and rows.max().item() < 1 - p + 0.06


def test_the_gradient_is_the_mask_times_the_scale_and_masks_differ_call_to_call():
    torch.manual_seed(1)
    x = torch.randn(64, 32, 48, requires_grad=True)
    out = dropout(x, 0.25)
    out.sum().backward()
    mask = (out != 0).float()
    assert torch.allclose(x.grad, mask * (LEVELS / round(0.75 * LEVELS)))
    assert not torch.equal(mask, (dropout(x, 0.25) != 0).float())


def test_no_dropout_in_eval_or_at_zero_and_everything_dropped_at_one():
    x = torch.randn(5, 7)
    layer = Dropout(0.4).eval()
    assert layer(x) is x and dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    assert "p=0.4" in repr(layer)


def test_the_same_seed_drops_the_same_entries():
    x = torch.ones(300, 300)
    torch.manual_seed(7)
    a = dropout(x, 0.2)
    torch.manual_seed(7)
    assert torch.equal(a, dropout(x, 0.2))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_stack_that_drops_out_between_its_layers_trains_a_layer_a_call(cell):
    """In training on the CPU, a multi-layer module with dropout between its layers runs a layer a
    call, with this dropout between them: the same numbers as the fused call where nothing is
    dropped, gradients to every parameter, and nothing added to the model's parameters."""
    from rnnlm.config import ModelConfig
    from rnnlm.models import RecurrentLM

    torch.manual_seed(0)
    model = RecurrentLM(30, ModelConfig(cell=cell, layers=3, emb=8, hidden=16, dropout=0.3, weight_dropout=0.2,
                                        tie=False))
    names = list(model.state_dict())
    x = torch.randint(0, 30, (4, 6))
    logits, _ = model.train()(x)
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert list(model.state_dict()) == names and len(model._layers) == 2  # the first layer's input size, and H
    model.rnn.dropout, model.drop.p = 1e-12, 0.0  # the stacked path, nothing dropped
    model.config = replace(model.config, weight_dropout=0.0)
    stacked, stacked_state = model(x)
    fused, fused_state = model.eval()(x)
    assert torch.allclose(stacked, fused, atol=1e-6)
    pairs = zip(*(state if cell == "lstm" else (state,) for state in (stacked_state, fused_state)))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in pairs)
