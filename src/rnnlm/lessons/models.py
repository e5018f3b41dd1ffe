"""Every model of the lessons, each under its lesson name, written to read like the diagrams.

Each colour of arrow in the lessons' diagrams is one weight matrix, used at every step:

    green  input to hidden    ``e`` / ``i_h`` (an embedding, then ``l_in`` in the Nietzsche models)
    orange hidden to hidden   ``l_hidden`` / ``h_h`` / the recurrent layer ``rnn``
    blue   hidden to output   ``l_out`` / ``h_o``

Inputs are token ids of shape (bs, seq), batch first. A model that predicts one token after a
window returns logits (bs, vocab); a model with an output after every input returns (bs, seq,
vocab). The lessons end with ``log_softmax`` and use ``nll_loss``; here the models return
logits and the loss is ``cross_entropy``, which is the same thing in one step.

The stateful models keep their hidden state in ``self.h`` between batches, detached after each
batch (truncated back-propagation through time), and start again from zeros when the batch size
changes or :meth:`Stateful.reset` is called. Nothing here is tied to a device: the state is
created where the input lives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnnlm.lessons.cells import RNNCell

N_FAC, N_HIDDEN = 42, 256  # Nietzsche: embedding size (about half the characters) and hidden size
NH = 64  # human numbers: embedding and hidden size


# Nietzsche, one character at a time: a window of characters predicts the next one.


class Char3Model(nn.Module):
    """Three characters in, the fourth out: the recurrent network unrolled by hand."""

    def __init__(self, vocab_size: int, n_fac: int = N_FAC, n_hidden: int = N_HIDDEN):
        super().__init__()
        self.e = nn.Embedding(vocab_size, n_fac)
        self.l_in = nn.Linear(n_fac, n_hidden)  # green
        self.l_hidden = nn.Linear(n_hidden, n_hidden)  # orange: square, so it can repeat
        self.l_out = nn.Linear(n_hidden, vocab_size)  # blue

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = x.unbind(1)
        in1 = F.relu(self.l_in(self.e(c1)))
        in2 = F.relu(self.l_in(self.e(c2)))
        in3 = F.relu(self.l_in(self.e(c3)))

        h = torch.zeros_like(in1)
        h = torch.tanh(self.l_hidden(h + in1))
        h = torch.tanh(self.l_hidden(h + in2))
        h = torch.tanh(self.l_hidden(h + in3))
        return self.l_out(h)


class CharLoopModel(nn.Module):
    """The same network with a loop: any window length. This is an RNN."""

    def __init__(self, vocab_size: int, n_fac: int = N_FAC, n_hidden: int = N_HIDDEN):
        super().__init__()
        self.e = nn.Embedding(vocab_size, n_fac)
        self.l_in = nn.Linear(n_fac, n_hidden)
        self.l_hidden = nn.Linear(n_hidden, n_hidden)
        self.l_out = nn.Linear(n_hidden, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], self.l_hidden.in_features, device=x.device)
        for c in x.unbind(1):
            inp = F.relu(self.l_in(self.e(c)))
            h = torch.tanh(self.l_hidden(h + inp))  # add the input to the hidden state
        return self.l_out(h)


class CharLoopConcatModel(nn.Module):
    """The loop again, but the input and the hidden state are concatenated, not added:
    they are different kinds of information (one character, the story so far)."""

    def __init__(self, vocab_size: int, n_fac: int = N_FAC, n_hidden: int = N_HIDDEN):
        super().__init__()
        self.e = nn.Embedding(vocab_size, n_fac)
        self.l_in = nn.Linear(n_fac + n_hidden, n_hidden)
        self.l_hidden = nn.Linear(n_hidden, n_hidden)
        self.l_out = nn.Linear(n_hidden, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], self.l_hidden.in_features, device=x.device)
        for c in x.unbind(1):
            inp = torch.cat((h, self.e(c)), 1)  # n_hidden + n_fac wide
            inp = F.relu(self.l_in(inp))  # back to n_hidden
            h = torch.tanh(self.l_hidden(inp))
        return self.l_out(h)


class CharRnn(nn.Module):
    """PyTorch's ``nn.RNN`` writes the loop and the input layer; keep the last output only."""

    def __init__(self, vocab_size: int, n_fac: int = N_FAC, n_hidden: int = N_HIDDEN):
        super().__init__()
        self.e = nn.Embedding(vocab_size, n_fac)
        self.rnn = nn.RNN(n_fac, n_hidden, batch_first=True)
        self.l_out = nn.Linear(n_hidden, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(1, x.shape[0], self.rnn.hidden_size, device=x.device)
        outp, h = self.rnn(self.e(x), h)  # outp: every step's hidden state, (bs, seq, n_hidden)
        return self.l_out(outp[:, -1])


class CharSeqRnn(nn.Module):
    """Multi-output: a prediction after every character of a non-overlapping window, so no
    step is computed twice. ``identity_init`` starts the hidden-to-hidden matrix as the
    identity, so repeated steps neither grow nor shrink the activations at first."""

    def __init__(self, vocab_size: int, n_fac: int = N_FAC, n_hidden: int = N_HIDDEN,
                 identity_init: bool = False):
        super().__init__()
        self.e = nn.Embedding(vocab_size, n_fac)
        self.rnn = nn.RNN(n_fac, n_hidden, batch_first=True)
        self.l_out = nn.Linear(n_hidden, vocab_size)
        if identity_init:
            with torch.no_grad():
                self.rnn.weight_hh_l0.copy_(torch.eye(n_hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(1, x.shape[0], self.rnn.hidden_size, device=x.device)
        outp, h = self.rnn(self.e(x), h)
        return self.l_out(outp)  # every step's output this time


# Models that keep their hidden state from one batch to the next.


class Stateful(nn.Module):
    """Keeps the hidden state ``self.h`` between batches, detached from its history."""

    def __init__(self):
        super().__init__()
        self.h = None

    def reset(self) -> None:
        """Forget the state: the next batch starts from zeros."""
        self.h = None

    def init_hidden(self, bs: int, device: torch.device) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Zeros in the shape PyTorch's recurrent layer ``self.rnn`` takes: (layers, bs, hidden),
        a pair of them for an LSTM. Models that run their own loop over a cell override this."""
        zeros = torch.zeros(self.rnn.num_layers, bs, self.rnn.hidden_size, device=device)
        return (zeros, zeros.clone()) if isinstance(self.rnn, nn.LSTM) else zeros

    def hidden(self, x: torch.Tensor):
        """The carried state, or zeros when there is none or the batch size changed."""
        h = self.h
        first = h[0] if isinstance(h, tuple) else h
        if first is None or first.shape[-2] != x.shape[0]:
            self.h = self.init_hidden(x.shape[0], x.device)
        return self.h

    def keep(self, h) -> None:
        """Remember the state's values but not how they were computed (back-propagation stops here)."""
        self.h = tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()


class CharSeqStatefulRnn(Stateful):
    """``CharSeqRnn`` on contiguous streams: the hidden state flows on from the previous batch."""

    recurrent_layer = nn.RNN

    def __init__(self, vocab_size: int, n_fac: int = N_FAC, n_hidden: int = N_HIDDEN):
        super().__init__()
        self.e = nn.Embedding(vocab_size, n_fac)
        self.rnn = self.recurrent_layer(n_fac, n_hidden, batch_first=True)
        self.l_out = nn.Linear(n_hidden, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outp, h = self.rnn(self.e(x), self.hidden(x))
        self.keep(h)
        return self.l_out(outp)


class CharSeqStatefulRnn2(Stateful):
    """The stateful RNN with the loop written out over a cell (``RNNCell``, hand-written in
    :mod:`rnnlm.lessons.cells`): what ``nn.RNN`` does inside."""

    def __init__(self, vocab_size: int, n_fac: int = N_FAC, n_hidden: int = N_HIDDEN):
        super().__init__()
        self.e = nn.Embedding(vocab_size, n_fac)
        self.rnn = RNNCell(n_fac, n_hidden)
        self.l_out = nn.Linear(n_hidden, vocab_size)

    def init_hidden(self, bs, device):
        return torch.zeros(bs, self.rnn.hidden_size, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outp = []
        o = self.hidden(x)
        for c in x.unbind(1):
            o = self.rnn(self.e(c), o)
            outp.append(o)
        self.keep(o)
        return self.l_out(torch.stack(outp, dim=1))


class CharSeqStatefulGRU(CharSeqStatefulRnn):
    """The stateful RNN with a GRU: gates decide what to keep, so it trains deeper and better."""

    recurrent_layer = nn.GRU


class CharSeqStatefulLSTM(Stateful):
    """Putting it all together: a stacked LSTM with dropout between its layers. Its state is
    a pair, the hidden state and the cell state."""

    def __init__(self, vocab_size: int, n_fac: int = N_FAC, n_hidden: int = 512, nl: int = 2,
                 dropout: float = 0.5):
        super().__init__()
        self.e = nn.Embedding(vocab_size, n_fac)
        self.rnn = nn.LSTM(n_fac, n_hidden, nl, dropout=dropout, batch_first=True)
        self.l_out = nn.Linear(n_hidden, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outp, h = self.rnn(self.e(x), self.hidden(x))
        self.keep(h)
        return self.l_out(outp)


# Human numbers, one word at a time (lesson 7). Batch norm after the non-linearity, as there.


class BatchNormFlat(nn.BatchNorm1d):
    """Batch norm over the features of a (bs, seq, features) tensor: every step of every
    sequence counts as one sample (fastai's ``BatchNorm1dFlat``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bs, seq, features = x.shape
        return super().forward(x.reshape(bs * seq, features)).reshape(bs, seq, features)


class Model0(nn.Module):
    """Three words in, the fourth out: one matrix per arrow colour, unrolled by hand."""

    def __init__(self, nv: int, nh: int = NH):
        super().__init__()
        self.i_h = nn.Embedding(nv, nh)  # green arrow
        self.h_h = nn.Linear(nh, nh)  # orange (brown) arrow
        self.h_o = nn.Linear(nh, nv)  # blue arrow
        self.bn = nn.BatchNorm1d(nh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(F.relu(self.i_h(x[:, 0])))
        if x.shape[1] > 1:
            h = h + self.i_h(x[:, 1])
            h = self.bn(F.relu(self.h_h(h)))
        if x.shape[1] > 2:
            h = h + self.i_h(x[:, 2])
            h = self.bn(F.relu(self.h_h(h)))
        return self.h_o(h)


class Model1(nn.Module):
    """Model0 refactored with a loop: an RNN."""

    def __init__(self, nv: int, nh: int = NH):
        super().__init__()
        self.i_h = nn.Embedding(nv, nh)
        self.h_h = nn.Linear(nh, nh)
        self.h_o = nn.Linear(nh, nv)
        self.bn = nn.BatchNorm1d(nh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], self.h_h.in_features, device=x.device)
        for i in range(x.shape[1]):
            h = h + self.i_h(x[:, i])
            h = self.bn(F.relu(self.h_h(h)))
        return self.h_o(h)


class Model2(nn.Module):
    """A prediction after every word; the state still starts from zeros at every batch."""

    def __init__(self, nv: int, nh: int = NH):
        super().__init__()
        self.i_h = nn.Embedding(nv, nh)
        self.h_h = nn.Linear(nh, nh)
        self.h_o = nn.Linear(nh, nv)
        self.bn = nn.BatchNorm1d(nh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], self.h_h.in_features, device=x.device)
        res = []
        for i in range(x.shape[1]):
            h = h + self.i_h(x[:, i])
            h = F.relu(self.h_h(h))
            res.append(self.h_o(self.bn(h)))
        return torch.stack(res, dim=1)


class Model3(Stateful):
    """Model2 that keeps its state: each batch continues the streams of the previous one."""

    def __init__(self, nv: int, nh: int = NH):
        super().__init__()
        self.i_h = nn.Embedding(nv, nh)
        self.h_h = nn.Linear(nh, nh)
        self.h_o = nn.Linear(nh, nv)
        self.bn = nn.BatchNorm1d(nh)

    def init_hidden(self, bs, device):
        return torch.zeros(bs, self.h_h.in_features, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = []
        h = self.hidden(x)
        for i in range(x.shape[1]):
            h = h + self.i_h(x[:, i])
            h = F.relu(self.h_h(h))
            res.append(self.bn(h))
        self.keep(h)
        return self.h_o(torch.stack(res, dim=1))


class Model4(Stateful):
    """Model3 with PyTorch's ``nn.RNN`` doing the loop."""

    def __init__(self, nv: int, nh: int = NH):
        super().__init__()
        self.i_h = nn.Embedding(nv, nh)
        self.rnn = nn.RNN(nh, nh, batch_first=True)
        self.h_o = nn.Linear(nh, nv)
        self.bn = BatchNormFlat(nh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res, h = self.rnn(self.i_h(x), self.hidden(x))
        self.keep(h)
        return self.h_o(self.bn(res))


class Model5(Stateful):
    """A 2-layer GRU: a little network inside each step decides how much of the green and
    the orange arrows to keep, so long, deep unrolled networks still train."""

    def __init__(self, nv: int, nh: int = NH):
        super().__init__()
        self.i_h = nn.Embedding(nv, nh)
        self.rnn = nn.GRU(nh, nh, 2, batch_first=True)
        self.h_o = nn.Linear(nh, nv)
        self.bn = BatchNormFlat(nh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res, h = self.rnn(self.i_h(x), self.hidden(x))
        self.keep(h)
        return self.h_o(self.bn(res))


# PyTorch basics: the one-hot "hihell" -> "ihello" toy.


class OneHotRnn(nn.Module):
    """One-hot letters in; the hidden state itself is the output, one score per letter."""

    def __init__(self, n_letters: int):
        super().__init__()
        self.rnn = nn.RNN(input_size=n_letters, hidden_size=n_letters, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (bs, seq, n_letters) one-hot rows; returns scores of the same shape."""
        out, _ = self.rnn(x)
        return out
