"""One token for one stream: the step of ``rnnlm generate`` and of a server with one client.

``SingleStreamStep`` takes the C kernel's step (``native_step``) where it builds: one call for
the whole step, shared by torch's number of threads. A machine with no C compiler takes the
torch step below (``TorchSingleStep``). Measured in
benchmarks/README.md ("The batch-1 step in C").

At batch 1 a step is a few matrix-vector products, so its floor is the time to stream the
weights through them once; what it costs beyond that is the work around them. ``BatchedStep``'s
packed oneDNN linear is the fastest at a batch of streams but slow at one row (its call costs
several times a plain product), so here every layer is one ``torch.addmv`` over its two weight
matrices side by side, written into scratch buffers made once, and the gate arithmetic runs in
place on views of them: ten small calls a layer and nothing re-packed or re-checked per step. An
LSTM's or RNN's step runs as one TorchScript call (``rnnlm.generation.scripted``: the same
numbers, and a server's worker gives the GIL up once a token, not once per small call). The LSTM's tanh is taken as 2 sigmoid(2x) - 1 (the cell gate's rows are
doubled once, which is exact): with two threads, torch's tanh right after MKL's threaded
product waits on the thread pool, where sigmoid does not. Measured in benchmarks/README.md
("Generation").

The new state is always a fresh tensor: a stream's state may be shared with its siblings (the
streams of one prompt start from one state), so nothing it holds is written to. The scratch
buffers belong to one thread each (a server steps each model from its worker thread, and may
score from another).

The weights are copied when the stepper is built: build it after any change to the model.
"""

from __future__ import annotations

import threading
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlm.generation.batched_step import gru_update
from rnnlm.generation.native_step import NativeStep
from rnnlm.generation.scripted import scripted
from rnnlm.models.recurrent import RecurrentLM, State

ROW_VIEWS = 4096  # vocabularies up to this size keep a ready view of each embedding row


def lstm_step(x: Tensor, h_all: Tensor, c_all: Tensor, weights: List[Tensor], biases: List[Tensor],
              rows: List[Tensor], gates: List[Tensor], hidden: int, head_w: Tensor,
              head_b: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """One token's embedding ``x`` (1, E) through an LSTM of state ``h_all``, ``c_all`` (layers,
    1, H): the logits (V,) and the new state, fresh tensors. ``weights[i]``: layer i's [W_ih,
    W_hh] in gate order input, forget, output, cell, the cell's rows doubled; ``rows``, ``gates``:
    scratch buffers (1, E + H) and (4H,) per layer."""
    hs: List[Tensor] = []
    cs: List[Tensor] = []
    for i in range(len(weights)):
        torch.cat([x, h_all[i]], 1, out=rows[i])
        g = torch.addmv(biases[i], weights[i], rows[i][0], out=gates[i]).sigmoid_()  # input, forget, output, sigmoid(2 cell)
        g_in, g_forget, g_out, g_cell = g.split(hidden)
        c = torch.mul(g_forget, c_all[i]).addcmul_(g_in, g_cell, value=2).sub_(g_in)  # f c + i tanh(cell), (1, H)
        g_out.neg_()
        x = torch.addcmul(g_out, g_out, torch.add(c, c).sigmoid_(), value=-2)  # o (2 sigmoid(2c) - 1)
        hs.append(x)
        cs.append(c)
    return torch.addmv(head_b, head_w, x[0]), torch.stack(hs), torch.stack(cs)


def rnn_step(x: Tensor, h_all: Tensor, weights: List[Tensor], biases: List[Tensor], rows: List[Tensor],
             head_w: Tensor, head_b: Tensor) -> Tuple[Tensor, Tensor]:
    """``lstm_step`` for a plain RNN (tanh): the logits and the new state."""
    hs: List[Tensor] = []
    for i in range(len(weights)):
        torch.cat([x, h_all[i]], 1, out=rows[i])
        x = torch.addmv(biases[i], weights[i], rows[i][0]).tanh_()[None]  # (1, H)
        hs.append(x)
    return torch.addmv(head_b, head_w, x[0]), torch.stack(hs)


class SingleStreamStep:
    """``step(token, state)``: logits (V,) and the new state after one token of one stream, by
    the C kernel where it applies (``native`` False: never), else by ``TorchSingleStep``."""

    def __init__(self, model: RecurrentLM, script: bool = True, native: bool = True):
        self.model, self.script = model, script
        self.native = NativeStep.of(model) if native else None  # None: the torch step runs
        self.torch_step: TorchSingleStep | None = None  # built at first use

    def step(self, token: int, state: State) -> tuple[torch.Tensor, State]:
        """The torch step wants ``torch.inference_mode()`` around it (``GenerationSession.step_one``
        gives it that); the C step does not."""
        if self.native is not None:
            return self.native.step(token, state)
        if self.torch_step is None:
            self.torch_step = TorchSingleStep(self.model, self.script)
        return self.torch_step.step(token, state)


class TorchSingleStep:
    """``SingleStreamStep``'s step in torch calls: every layer one ``addmv``, the gates in place."""

    def __init__(self, model: RecurrentLM, script: bool = True):
        config = model.config
        self.cell, self.layers, self.hidden = config.cell, config.layers, config.hidden
        embedding = model.embedding.weight.detach()
        self.embedding = embedding
        self.rows = list(embedding.split(1)) if embedding.shape[0] <= ROW_VIEWS else None  # (1, E) each
        self.head_w = model.head.weight.detach().contiguous()  # (V, H)
        self.head_b = model.head.bias.detach().clone()
        self.weights = []
        h = config.hidden
        for i in range(self.layers):
            rnn, k = (model.rnn[i], 0) if config.locked_dropout else (model.rnn, i)
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{k}").detach(), getattr(rnn, f"weight_hh_l{k}").detach()
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{k}").detach(), getattr(rnn, f"bias_hh_l{k}").detach()
            if self.cell == "gru":
                self.weights.append((w_ih.contiguous(), b_ih.clone(), w_hh.contiguous(), b_hh.clone()))
                continue
            w, b = torch.cat([w_ih, w_hh], 1), b_ih + b_hh  # (G*H, E + H), (G*H,)
            if self.cell == "lstm":  # torch's gate order input, forget, cell, output -> i, f, o, cell:
                order = torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h), torch.arange(2 * h, 3 * h)])
                w, b = w[order], b[order]  # the three sigmoid gates side by side
                w[3 * h :] *= 2  # sigmoid(2a) gives tanh(a) = 2 sigmoid(2a) - 1
                b[3 * h :] *= 2
            self.weights.append((w.contiguous(), b.contiguous()))
        self.w, self.b = [w for w, *_ in self.weights], [b for _, b, *_ in self.weights]
        self.run = None if self.cell == "gru" else scripted(lstm_step if self.cell == "lstm" else rnn_step) if script \
            else (lstm_step if self.cell == "lstm" else rnn_step)
        self.local = threading.local()

    def scratch(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """This thread's buffers, per layer: the input [x, h] (1, E + H) and the gates (G*H,)."""
        buffers = getattr(self.local, "buffers", None)
        if buffers is None:
            buffers = ([torch.empty(1, w.shape[1], device=w.device) for w in self.w],
                       [torch.empty(w.shape[0], device=w.device) for w in self.w])
            self.local.buffers = buffers
        return buffers

    def row(self, token: int) -> torch.Tensor:
        return self.rows[token] if self.rows is not None else self.embedding[token : token + 1]  # (1, E)

    def step(self, token: int, state: State) -> tuple[torch.Tensor, State]:
        """Call it under ``torch.inference_mode()`` (``GenerationSession.step_one`` does): the
        weights are detached, so nothing is recorded, but the mode's switch costs a few
        microseconds."""
        x = self.row(token)  # (1, E)
        if self.cell == "gru":
            hs = []
            for (w_ih, b_ih, w_hh, b_hh), h in zip(self.weights, state.unbind(0)):  # h: (1, H)
                x = gru_update(F.linear(x, w_ih, b_ih), F.linear(h, w_hh, b_hh), h)  # (1, H)
                hs.append(x)
            return torch.addmv(self.head_b, self.head_w, x[0]), torch.stack(hs)  # (V,)
        rows, gates = self.scratch()
        if self.cell == "lstm":
            logits, h, c = self.run(x, state[0], state[1], self.w, self.b, rows, gates, self.hidden, self.head_w,
                                    self.head_b)
            return logits, (h, c)
        return self.run(x, state, self.w, self.b, rows, self.head_w, self.head_b)
