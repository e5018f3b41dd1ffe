"""The hidden state of one recurrent layer at every step of a text.

PyTorch's fused recurrent modules return the last layer's hidden state at every step but the
cell state of an LSTM (and any lower layer's state) only after the last step. Here the stack runs
one layer at a time, each layer still one fused call: a layer's output is the hidden state h at
every step, so an RNN's or GRU's trace is that output. An LSTM's cell state c follows from the
same call: with every h_{t-1} known, the gates of all steps come from one matrix product, and
c_t = f_t * c_{t-1} + i_t * g_t is a cheap elementwise scan.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from rnnlm.models import RecurrentLM, State
from rnnlm.models.recurrent import select_layer


def state_kind(model: RecurrentLM) -> str:
    """What a trace of ``model`` holds: an LSTM's cell state, or the hidden state of the others."""
    return "cell state" if model.config.cell == "lstm" else "hidden state"


def run_layer(model: RecurrentLM, i: int, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    """Layer ``i`` (0-based) of the stack alone, one fused call on that layer's own weights.
    ``x``: (N, T, input size); ``state``: that layer's state, (1, N, H) or a pair."""
    if model.config.locked_dropout:  # already a list of one-layer modules
        return model.rnn[i](x, state)
    rnn = model.rnn
    with torch.device("meta"):
        single = type(rnn)(x.shape[-1], rnn.hidden_size, 1, bias=rnn.bias, batch_first=True)
    weights = {name.replace(f"_l{i}", "_l0"): p for name, p in rnn.named_parameters() if name.endswith(f"_l{i}")}
    return functional_call(single, weights, (x, state))


def lstm_cells(x: torch.Tensor, h: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
               weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """The cell state (N, T, H) at every step of an LSTM layer that read ``x`` (N, T, input) from
    (h0, c0) (N, H each) and output ``h`` (N, T, H)."""
    previous = torch.cat([h0[:, None], h[:, :-1]], dim=1)  # h_{t-1} for every t
    gates = x @ weights["weight_ih"].T + previous @ weights["weight_hh"].T
    if "bias_ih" in weights:
        gates = gates + weights["bias_ih"] + weights["bias_hh"]
    i, f, g, _ = gates.chunk(4, dim=-1)  # PyTorch's order: input, forget, cell, output
    i, f, g = i.sigmoid(), f.sigmoid(), g.tanh()
    written = i * g
    cells = torch.empty_like(h)
    c = c0
    for t in range(h.shape[1]):
        c = torch.addcmul(written[:, t], f[:, t], c)
        cells[:, t] = c
    return cells


def layer_weights(model: RecurrentLM, i: int) -> dict[str, torch.Tensor]:
    """Layer ``i``'s weights by their names without the layer suffix (weight_ih, bias_hh ...)."""
    rnn, suffix = (model.rnn[i], "_l0") if model.config.locked_dropout else (model.rnn, f"_l{i}")
    return {name[: -len(suffix)]: p for name, p in rnn.named_parameters() if name.endswith(suffix)}


@torch.inference_mode()
def forward_traced(model: RecurrentLM, x: torch.Tensor, state: State | None, layer: int
                   ) -> tuple[torch.Tensor, State, torch.Tensor]:
    """What ``model(x, state)`` returns in eval mode, logits (N, T, V) and the new state, plus the
    trace (N, T, H) of layer ``layer`` (0-based): an LSTM's cell state after each step, the
    hidden state for an RNN or GRU."""
    if state is None:
        state = model.init_state(x.shape[0], x.device)
    out = model.embedding(x)
    h_states, c_states, trace = [], [], None
    for i in range(model.config.layers):
        layer_state = select_layer(state, i)
        inputs = out
        out, new_state = run_layer(model, i, inputs, layer_state)
        if isinstance(new_state, tuple):
            h_states.append(new_state[0])
            c_states.append(new_state[1])
        else:
            h_states.append(new_state)
        if i == layer:
            if isinstance(layer_state, tuple):
                h0, c0 = (s[0] for s in layer_state)
                trace = lstm_cells(inputs, out, h0, c0, layer_weights(model, i))
            else:
                trace = out
    new = (torch.cat(h_states), torch.cat(c_states)) if c_states else torch.cat(h_states)
    return model.head(out), new, trace
