"""RecurrentLM: the production model, built on PyTorch's fused recurrent kernels.

    tokens -> embedding (green arrow: input to hidden)
           -> nn.RNN / nn.GRU / nn.LSTM (orange arrow: hidden to hidden, carried across batches)
           -> dropout -> linear (blue arrow: hidden to output) -> logits over the vocab
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlm.config import ModelConfig

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

RECURRENT_LAYERS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentLM(nn.Module):
    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.emb)
        self.rnn = RECURRENT_LAYERS[config.cell](
            config.emb,
            config.hidden,
            config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, vocab_size)
        if config.tie:
            self.head.weight = self.embedding.weight

    def init_state(self, bs: int, device: torch.device | str | None = None) -> State:
        """Zeros of shape (layers, bs, hidden); a pair of them for an LSTM."""
        zeros = torch.zeros(self.config.layers, bs, self.config.hidden, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """``x``: (bs, seq) token ids. Returns logits (bs, seq, vocab) and the new state."""
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        out, state = self.rnn(self.embedding(x), state)
        return self.head(self.drop(out)), state


def detach_state(state: State) -> State:
    """Cut the graph behind the state: truncated back-propagation through time."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def state_batch_size(state: State) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]
