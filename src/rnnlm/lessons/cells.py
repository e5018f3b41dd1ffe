"""The recurrent cells the lessons print "from the PyTorch source", written out by hand.

Each function is one time step: the input and the previous hidden state go through their own
linear maps (input-to-hidden and hidden-to-hidden; PyTorch adds them rather than concatenating
``[h, x]``), then the cell's non-linearities. The modules hold the weights under the names and
shapes ``torch.nn.RNNCell``/``GRUCell``/``LSTMCell`` use, so a state dict moves between them;
the tests check the two agree. Use PyTorch's fused layers for real work: these are for reading.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def rnn_cell(input, hidden, w_ih, w_hh, b_ih, b_hh):
    return torch.tanh(F.linear(input, w_ih, b_ih) + F.linear(hidden, w_hh, b_hh))


def gru_cell(input, hidden, w_ih, w_hh, b_ih, b_hh):
    gi = F.linear(input, w_ih, b_ih)
    gh = F.linear(hidden, w_hh, b_hh)
    i_r, i_i, i_n = gi.chunk(3, 1)
    h_r, h_i, h_n = gh.chunk(3, 1)

    resetgate = torch.sigmoid(i_r + h_r)  # how much of the past to use for the new memory
    inputgate = torch.sigmoid(i_i + h_i)  # the update gate z: how much of the past to keep
    newgate = torch.tanh(i_n + resetgate * h_n)  # the new memory h~
    return newgate + inputgate * (hidden - newgate)  # (1 - z) * h~ + z * h


def lstm_cell(input, hidden, w_ih, w_hh, b_ih, b_hh):
    hx, cx = hidden
    gates = F.linear(input, w_ih, b_ih) + F.linear(hx, w_hh, b_hh)
    ingate, forgetgate, cellgate, outgate = gates.chunk(4, 1)

    ingate = torch.sigmoid(ingate)
    forgetgate = torch.sigmoid(forgetgate)
    cellgate = torch.tanh(cellgate)
    outgate = torch.sigmoid(outgate)

    cy = forgetgate * cx + ingate * cellgate  # the cell state: the LSTM's extra memory
    hy = outgate * torch.tanh(cy)
    return hy, cy


class _Cell(nn.Module):
    gates = 1
    formula = staticmethod(rnn_cell)

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        bound = 1 / math.sqrt(hidden_size)  # PyTorch's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, input, hidden):
        return self.formula(input, hidden, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class RNNCell(_Cell):
    """``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``."""


class GRUCell(_Cell):
    """Reset and update gates decide how much of the past goes into the new hidden state."""

    gates = 3
    formula = staticmethod(gru_cell)


class LSTMCell(_Cell):
    """Input, forget, cell and output gates; the state is the pair ``(h, c)``."""

    gates = 4
    formula = staticmethod(lstm_cell)
