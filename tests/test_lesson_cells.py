"""The hand-written cells compute what torch.nn's cells compute: outputs and gradients."""

import io

import pytest
import torch
from torch import nn

from rnnlm.lessons.demos import check_cells, forward_and_grads
from rnnlm.lessons.cells import GRUCell, LSTMCell, RNNCell
from rnnlm.lessons.models import CharSeqStatefulRnn, CharSeqStatefulRnn2

PAIRS = [(RNNCell, nn.RNNCell), (GRUCell, nn.GRUCell), (LSTMCell, nn.LSTMCell)]


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=[p[0].__name__ for p in PAIRS])
@pytest.mark.parametrize("bs, n_in, n_hidden", [(1, 3, 5), (16, 42, 64)])
def test_cell_matches_torch_forward_and_gradients(ours, theirs, bs, n_in, n_hidden):
    torch.manual_seed(bs + n_in)
    reference = theirs(n_in, n_hidden)
    cell = ours(n_in, n_hidden)
    cell.load_state_dict(reference.state_dict())  # same names, same shapes
    for _ in range(3):  # random inputs and states, weights moved off their initial values too
        x = torch.randn(bs, n_in) * 2
        state = torch.randn(bs, n_hidden)
        if ours is LSTMCell:
            state = (state, torch.randn(bs, n_hidden))
        a, b = forward_and_grads(cell, x, state), forward_and_grads(reference, x, state)
        assert len(a) == len(b) == 6  # output, input gradient, 4 weight gradients
        for mine, torchs in zip(a, b):
            assert mine.shape == torchs.shape
            assert (mine - torchs).abs().max() < 1e-5
        assert a[1].abs().max() > 0  # the gradients are real, not all zero
        with torch.no_grad():
            for p in reference.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        cell.load_state_dict(reference.state_dict())


def test_a_wrong_formula_would_be_caught():
    torch.manual_seed(0)
    reference, cell = nn.GRUCell(4, 6), GRUCell(4, 6)
    cell.load_state_dict(reference.state_dict())
    with torch.no_grad():
        cell.bias_hh[:6] += 0.1  # shift the reset gate only
    x, h = torch.randn(3, 4), torch.randn(3, 6)
    assert (cell(x, h) - reference(x, h)).abs().max() > 1e-3


def test_check_cells_reports_tiny_differences():
    worst = check_cells(log=io.StringIO())
    assert set(worst) == {"RNNCell", "GRUCell", "LSTMCell"}
    assert max(worst.values()) < 1e-5


def test_hand_unrolled_loop_equals_nn_rnn():
    """CharSeqStatefulRnn2 (loop over our RNNCell) is CharSeqStatefulRnn (nn.RNN) written out."""
    torch.manual_seed(0)
    fused, loop = CharSeqStatefulRnn(20, 6, 12), CharSeqStatefulRnn2(20, 6, 12)
    loop.e.load_state_dict(fused.e.state_dict())
    loop.l_out.load_state_dict(fused.l_out.state_dict())
    loop.rnn.load_state_dict({"weight_ih": fused.rnn.weight_ih_l0, "weight_hh": fused.rnn.weight_hh_l0,
                              "bias_ih": fused.rnn.bias_ih_l0, "bias_hh": fused.rnn.bias_hh_l0})
    x = torch.randint(0, 20, (4, 8))
    for _ in range(2):  # the second batch starts from the carried state
        assert (fused(x) - loop(x)).abs().max() < 1e-5
    assert (fused.h[0] - loop.h).abs().max() < 1e-5
