"""One token for a batch of streams, faster than a call of the fused recurrent module.

Generation runs the model one token at a time for N streams (a server steps every stream it
serves at once). For a single step PyTorch's recurrent module does two matrix
products per layer (input, then hidden) and goes through its sequence machinery; here an LSTM
or RNN layer is one matrix product of [x, h] with the two weight matrices side by side, packed
once for oneDNN where torch has it (the fastest fp32 GEMM on the CPUs here), and the gates are a
few elementwise operations. A GRU keeps its two products (its candidate gate needs the hidden
part alone). Measured against the fused module in benchmarks/README.md ("Serving").

The weights are copied when the stepper is built: build it after any change to the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnlm.models.recurrent import RecurrentLM, State


def packed_linear():
    """(pack, apply) for oneDNN's linear with a weight packed once, or plain addmm without it."""
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        if not torch.backends.mkldnn.is_available():
            raise RuntimeError
        pack, apply = ops._reorder_linear_weight, ops._linear_pointwise
        probe = pack(torch.ones(2, 3), None)
        apply(torch.ones(1, 3), probe, torch.zeros(2), "none", [], "")
    except (AttributeError, RuntimeError):
        return (lambda w: w), (lambda x, w, b: torch.addmm(b, x, w.t()))
    return (lambda w: pack(w, None)), (lambda x, w, b: apply(x, w, b, "none", [], ""))


def gru_update(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """A GRU layer's new state from its input part ``gi`` and hidden part ``gh`` (N, 3H: reset,
    update, new) and its state ``h`` (N, H), as torch's GRU computes it."""
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r, z = (i_r + h_r).sigmoid_(), (i_z + h_z).sigmoid_()
    n = torch.addcmul(i_n, r, h_n).tanh_()
    return torch.addcmul(n, z, h - n)  # (1 - z) * n + z * h


class BatchedStep:
    """``step(ids, state)``: logits (N, V) and the new state after one token (N,) per stream."""

    def __init__(self, model: RecurrentLM):
        config = model.config
        self.cell, self.layers = config.cell, config.layers
        on_cpu = next(model.parameters()).device.type == "cpu"
        pack, self.linear = packed_linear() if on_cpu else ((lambda w: w), lambda x, w, b: torch.addmm(b, x, w.t()))
        self.embedding = model.embedding.weight.detach()
        self.head_w, self.head_b = pack(model.head.weight.detach().contiguous()), model.head.bias.detach().clone()
        self.weights = []
        for i in range(self.layers):
            rnn, k = (model.rnn[i], 0) if config.locked_dropout else (model.rnn, i)
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{k}").detach(), getattr(rnn, f"weight_hh_l{k}").detach()
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{k}").detach(), getattr(rnn, f"bias_hh_l{k}").detach()
            if self.cell == "gru":
                self.weights.append((pack(w_ih.contiguous()), b_ih.clone(), pack(w_hh.contiguous()), b_hh.clone()))
            else:
                self.weights.append((pack(torch.cat([w_ih, w_hh], 1).contiguous()), (b_ih + b_hh).contiguous()))

    @torch.inference_mode()
    def step(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Logits (N, V) and the new state, a fresh tensor (``state`` is left as it was)."""
        new_state: State = tuple(s.clone() for s in state) if isinstance(state, tuple) else state.clone()
        return self.step_into(ids, new_state), new_state

    @torch.inference_mode()
    def step_into(self, ids: torch.Tensor, state: State) -> torch.Tensor:
        """One token (N,) per stream: ``state`` (layers, N, H; each layer's rows contiguous, as a
        block of slots is) is overwritten with the new state; the logits (N, V) are returned."""
        x = F.embedding(ids, self.embedding)  # (N, E)
        if self.cell == "lstm":
            h_all, c_all = state  # (layers, N, H) each
            for (w, b), h, c in zip(self.weights, h_all, c_all):
                gates = self.linear(torch.cat([x, h], 1), w, b)  # (N, 4H): input, forget, cell, output
                g_in, g_forget, g_cell, g_out = gates.chunk(4, 1)
                c.mul_(g_forget.sigmoid_()).addcmul_(g_in.sigmoid_(), g_cell.tanh_())
                x = torch.mul(g_out.sigmoid_(), c.tanh(), out=h)
        elif self.cell == "gru":
            for (w_ih, b_ih, w_hh, b_hh), h in zip(self.weights, state):
                x = h.copy_(gru_update(self.linear(x, w_ih, b_ih), self.linear(h, w_hh, b_hh), h))
        else:
            for (w, b), h in zip(self.weights, state):
                x = h.copy_(self.linear(torch.cat([x, h], 1), w, b).tanh_())
        return self.linear(x, self.head_w, self.head_b)
