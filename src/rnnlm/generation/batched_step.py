"""One token for a batch of streams, faster than a call of the fused recurrent module.

Generation runs the model one token at a time for N streams (a server steps every stream it
serves at once). For a single step PyTorch's recurrent module does two matrix
products per layer (input, then hidden) and goes through its sequence machinery; here an LSTM
or RNN layer is one matrix product of [x, h] with the two weight matrices side by side, packed
once for oneDNN where torch has it (the fastest fp32 GEMM on the CPUs here), and the gates are a
few elementwise operations. A GRU keeps its two products (its candidate gate needs the hidden
part alone). Measured against the fused module in benchmarks/README.md ("Serving").

The step runs as one TorchScript call (``rnnlm.generation.scripted``): a server's worker gives
the GIL up once a step, not once per small call, and the event loop writes meanwhile.

The weights are copied when the stepper is built: build it after any change to the model.
"""

from __future__ import annotations

from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlm.generation.scripted import scripted
from rnnlm.models.recurrent import RecurrentLM, State


def packs_linear() -> bool:
    """Whether oneDNN's linear with a weight packed once (``torch.ops.mkldnn``) works here."""
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        probe = ops._reorder_linear_weight(torch.ones(2, 3), None)
        ops._linear_pointwise(torch.ones(1, 3), probe, torch.zeros(2), "none", [], "")
    except (AttributeError, RuntimeError):
        return False
    return True


def linear(x: Tensor, w: Tensor, b: Tensor, packed: bool) -> Tensor:
    """x w^T + b: oneDNN's linear on a packed ``w``, or addmm on a plain one."""
    if packed:
        no_scalars = torch.jit.annotate(List[Optional[Union[int, float, complex]]], [])
        return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", no_scalars, "")
    return torch.addmm(b, x, w.t())


def gru_update(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """A GRU layer's new state from its input part ``gi`` and hidden part ``gh`` (N, 3H: reset,
    update, new) and its state ``h`` (N, H), as torch's GRU computes it."""
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r, z = (i_r + h_r).sigmoid_(), (i_z + h_z).sigmoid_()
    n = torch.addcmul(i_n, r, h_n).tanh_()
    return torch.addcmul(n, z, h - n)  # (1 - z) * n + z * h


def into_block(ids: Tensor, out: Optional[Tensor]) -> Tensor:
    """The ids (N,) padded with token 0 to the rows of ``out`` (R, V), R >= N, when it is given."""
    return ids if out is None else F.pad(ids, [0, out.shape[0] - ids.shape[0]])


def written(logits: Tensor, out: Optional[Tensor]) -> Tensor:
    return logits if out is None else out.copy_(logits)


def lstm_step(ids: Tensor, h_all: Tensor, c_all: Tensor, embedding: Tensor, weights: List[Tensor],
              biases: List[Tensor], head_w: Tensor, head_b: Tensor, packed: bool, out: Optional[Tensor]) -> Tensor:
    """One token (N,) per stream through an LSTM whose layers' [W_ih, W_hh] are ``weights``:
    ``h_all`` and ``c_all`` (layers, R, H) overwritten with the new state; the logits (R, V)."""
    x = F.embedding(into_block(ids, out), embedding)  # (R, E)
    for i in range(len(weights)):
        h, c = h_all[i], c_all[i]
        gates = linear(torch.cat([x, h], 1), weights[i], biases[i], packed)  # (R, 4H): input, forget, cell, output
        g_in, g_forget, g_cell, g_out = gates.chunk(4, 1)
        c.mul_(g_forget.sigmoid_()).addcmul_(g_in.sigmoid_(), g_cell.tanh_())
        x = torch.mul(g_out.sigmoid_(), c.tanh(), out=h)
    return written(linear(x, head_w, head_b, packed), out)


def rnn_step(ids: Tensor, h_all: Tensor, embedding: Tensor, weights: List[Tensor], biases: List[Tensor],
             head_w: Tensor, head_b: Tensor, packed: bool, out: Optional[Tensor]) -> Tensor:
    """``lstm_step`` for a plain RNN (tanh)."""
    x = F.embedding(into_block(ids, out), embedding)
    for i in range(len(weights)):
        h = h_all[i]
        x = h.copy_(linear(torch.cat([x, h], 1), weights[i], biases[i], packed).tanh_())
    return written(linear(x, head_w, head_b, packed), out)


def gru_step(ids: Tensor, h_all: Tensor, embedding: Tensor, w_ih: List[Tensor], b_ih: List[Tensor],
             w_hh: List[Tensor], b_hh: List[Tensor], head_w: Tensor, head_b: Tensor, packed: bool,
             out: Optional[Tensor]) -> Tensor:
    """``lstm_step`` for a GRU: two products a layer (its candidate gate needs the hidden part alone)."""
    x = F.embedding(into_block(ids, out), embedding)
    for i in range(len(w_ih)):
        h = h_all[i]
        x = h.copy_(gru_update(linear(x, w_ih[i], b_ih[i], packed), linear(h, w_hh[i], b_hh[i], packed), h))
    return written(linear(x, head_w, head_b, packed), out)


class BatchedStep:
    """``step(ids, state)``: logits (N, V) and the new state after one token (N,) per stream."""

    def __init__(self, model: RecurrentLM, script: bool = True):
        config = model.config
        self.cell, self.layers = config.cell, config.layers
        self.packed = next(model.parameters()).device.type == "cpu" and packs_linear()
        pack = (lambda w: torch.ops.mkldnn._reorder_linear_weight(w, None)) if self.packed else (lambda w: w)
        self.embedding = model.embedding.weight.detach()
        self.head_w, self.head_b = pack(model.head.weight.detach().contiguous()), model.head.bias.detach().clone()
        parts: list[list[Tensor]] = [[], [], [], []]  # LSTM, RNN: W, b; GRU: W_ih, b_ih, W_hh, b_hh
        for i in range(self.layers):
            rnn, k = (model.rnn[i], 0) if config.locked_dropout else (model.rnn, i)
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{k}").detach(), getattr(rnn, f"weight_hh_l{k}").detach()
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{k}").detach(), getattr(rnn, f"bias_hh_l{k}").detach()
            if self.cell == "gru":
                layer = (pack(w_ih.contiguous()), b_ih.clone(), pack(w_hh.contiguous()), b_hh.clone())
            else:
                layer = (pack(torch.cat([w_ih, w_hh], 1).contiguous()), (b_ih + b_hh).contiguous())
            for part, tensor in zip(parts, layer):
                part.append(tensor)
        self.weights = parts[:4] if self.cell == "gru" else parts[:2]
        fn = {"lstm": lstm_step, "gru": gru_step, "rnn": rnn_step}[self.cell]
        self.run = scripted(fn) if script else fn

    @torch.inference_mode()
    def step(self, ids: Tensor, state: State) -> tuple[Tensor, State]:
        """Logits (N, V) and the new state, a fresh tensor (``state`` is left as it was)."""
        new_state: State = tuple(s.clone() for s in state) if isinstance(state, tuple) else state.clone()
        return self.step_into(ids, new_state), new_state

    @torch.inference_mode()
    def step_into(self, ids: Tensor, state: State, out: Tensor | None = None) -> Tensor:
        """One token (N,) per stream: ``state`` (layers, R, H; each layer's rows contiguous, as a
        block of slots is) is overwritten with the new state; the logits (R, V) are returned.
        R = N, or the rows of ``out`` (R, V), which then receives the logits (the rows past N
        read token 0)."""
        states = list(state) if isinstance(state, tuple) else [state]
        return self.run(ids, *states, self.embedding, *self.weights, self.head_w, self.head_b, self.packed, out)
