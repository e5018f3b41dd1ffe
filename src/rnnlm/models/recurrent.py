"""RecurrentLM: the production model, built on PyTorch's fused recurrent kernels.

    tokens -> embedding (green arrow: input to hidden)
           -> nn.RNN / nn.GRU / nn.LSTM (orange arrow: hidden to hidden, carried across batches)
           -> dropout -> linear (blue arrow: hidden to output) -> logits over the vocab

Regularisation of AWD-LSTM (Merity et al., 2017), each off unless its config asks for it:
embedding dropout drops whole rows of the embedding; weight dropout drops entries of the
hidden-to-hidden matrices, a fresh mask each batch, then runs the fused kernel on the dropped
copy (``torch.func.functional_call``), so the parameters themselves stay whole; locked dropout
keeps one mask for all the time steps of a batch, which needs the stack run one layer at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from rnnlm.config import ModelConfig
from rnnlm.models.dropout import Dropout, dropout

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

RECURRENT_LAYERS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per layer in PyTorch's recurrent modules


def parameter_count(vocab_size: int, config: ModelConfig) -> int:
    """Parameters of ``RecurrentLM(vocab_size, config)``, counted without building it (so a size
    that cannot fit in memory is caught before it is asked for)."""
    h, gates = config.hidden, GATES[config.cell]
    inputs = [config.emb] + [h] * (config.layers - 1)
    recurrent = sum(gates * h * (size + h + 2) for size in inputs)
    head = (0 if config.tie else h * vocab_size) + vocab_size
    return vocab_size * config.emb + recurrent + head


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, the same at every time step (variational dropout)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (bs, seq, features)."""
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p)
        return x * mask / (1 - self.p)


def embedding_dropout(weight: torch.Tensor, p: float) -> torch.Tensor:
    """The embedding matrix with whole rows zeroed: a dropped token vanishes from the batch."""
    mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p)
    return weight * mask / (1 - p)


class RecurrentLM(nn.Module):
    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.emb)
        cell = RECURRENT_LAYERS[config.cell]
        if config.locked_dropout:
            sizes = [config.emb] + [config.hidden] * (config.layers - 1)
            self.rnn = nn.ModuleList(cell(size, config.hidden, 1, batch_first=True) for size in sizes)
            self.drop = LockedDropout(config.dropout)
        else:
            self.rnn = cell(
                config.emb,
                config.hidden,
                config.layers,
                dropout=config.dropout if config.layers > 1 else 0.0,
                batch_first=True,
            )
            self.drop = Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, vocab_size)
        self._layers: dict[int, nn.RNNBase] = {}  # one-layer modules by input size, for _stacked (not submodules)
        if config.tie:
            self.head.weight = self.embedding.weight

    def init_state(self, bs: int, device: torch.device | str | None = None) -> State:
        """Zeros of shape (layers, bs, hidden); a pair of them for an LSTM."""
        zeros = torch.zeros(self.config.layers, bs, self.config.hidden, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    def forward(
        self, x: torch.Tensor, state: State | None = None, *, activations: bool = False
    ) -> tuple[torch.Tensor, State] | tuple[torch.Tensor, State, tuple[torch.Tensor, torch.Tensor]]:
        """``x``: (bs, seq) token ids. Returns logits (bs, seq, vocab) and the new state; with
        ``activations`` also the last layer's output before and after dropout (for AR/TAR)."""
        out, state = self.features(x, state)
        dropped = self.drop(out)
        logits = self.head(dropped)
        return (logits, state, (out, dropped)) if activations else (logits, state)

    def features(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Everything before the head: the last layer's output (bs, seq, H) and the new state.
        Alone, it reads ``x`` without predicting (a warm-up, rnnlm.evaluation.streams)."""
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        if self.training and self.config.emb_dropout > 0:
            emb = F.embedding(x, embedding_dropout(self.embedding.weight, self.config.emb_dropout))
        else:
            emb = self.embedding(x)
        if self.config.locked_dropout:
            return self._layer_by_layer(emb, state)
        return self._recur(self.rnn, emb, state)

    def _recur(self, rnn: nn.RNNBase, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One call of a fused recurrent module; in training, on dropped hidden-to-hidden weights,
        and on the CPU, where it drops out between its layers, one call a layer (``_stacked``)."""
        p = self.config.weight_dropout
        stacked = self.training and rnn.num_layers > 1 and rnn.dropout > 0 and x.device.type == "cpu"
        if not self.training or (p == 0 and not stacked):
            return rnn(x, state)
        dropped = {name: dropout(w, p) for name, w in rnn.named_parameters() if name.startswith("weight_hh")}
        if stacked:
            return self._stacked(rnn, {**dict(rnn.named_parameters()), **dropped}, x, state)
        return functional_call(rnn, dropped, (x, state), strict=False)

    def _stacked(self, rnn: nn.RNNBase, weights: dict[str, torch.Tensor], x: torch.Tensor,
                 state: State) -> tuple[torch.Tensor, State]:
        """``rnn`` (training) one layer at a time on ``weights``, ``dropout`` between the layers:
        the dropout of a fused module draws every entry's Bernoulli alone on the CPU
        (rnnlm.models.dropout). Each layer is a one-layer module of the same kind, its weights
        on the meta device and replaced by the layer's own for the call."""
        states = []
        for k in range(rnn.num_layers):
            if k > 0:
                x = dropout(x, rnn.dropout)
            size = rnn.input_size if k == 0 else rnn.hidden_size
            if size not in self._layers:
                self._layers[size] = type(rnn)(size, rnn.hidden_size, 1, batch_first=True, device="meta")
            layer = {f"{kind}_l0": weights[f"{kind}_l{k}"] for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            x, layer_state = functional_call(self._layers[size], layer, (x, select_layer(state, k)))
            states.append(layer_state)
        if isinstance(state, tuple):
            return x, (torch.cat([h for h, _ in states]), torch.cat([c for _, c in states]))
        return x, torch.cat(states)

    def _layer_by_layer(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The stack one layer at a time, locked dropout between layers."""
        states = []
        for i, rnn in enumerate(self.rnn):
            if i > 0:
                x = self.drop(x)
            x, layer_state = self._recur(rnn, x, select_layer(state, i))
            states.append(layer_state)
        if isinstance(state, tuple):
            return x, (torch.cat([h for h, _ in states]), torch.cat([c for _, c in states]))
        return x, torch.cat(states)


def select_layer(state: State, i: int) -> State:
    if isinstance(state, tuple):
        return tuple(s[i : i + 1] for s in state)
    return state[i : i + 1]


def detach_state(state: State) -> State:
    """Cut the graph behind the state: truncated back-propagation through time."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def fp32_state(state: State) -> State:
    """The state in fp32 (an LSTM under bfloat16 autocast returns its state in bf16)."""
    if isinstance(state, tuple):
        return tuple(s.float() for s in state)
    return state.float()


def cat_states(states: list[State]) -> State:
    """The states of single streams, (layers, 1, H) each, as one batch (layers, N, H)."""
    if len(states) == 1:
        return states[0]
    if isinstance(states[0], tuple):
        return tuple(torch.cat(parts, dim=1) for parts in zip(*states))
    return torch.cat(states, dim=1)


def split_state(state: State) -> list[State]:
    """A batch state (layers, N, H) as N single-stream states (layers, 1, H), views of it."""
    if isinstance(state, tuple):
        return list(zip(*(s.split(1, dim=1) for s in state)))
    return list(state.split(1, dim=1))
