"""The small lessons that are not a language model: the "hihell" toy, ``nn.RNN`` shapes, cells."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

import torch
from torch import nn

from rnnlm.lessons.cells import GRUCell, LSTMCell, RNNCell
from rnnlm.lessons.models import OneHotRnn
from rnnlm.lessons.windows import hihell


@dataclass
class ToyRun:
    predicted: str
    losses: list[float]


def train_hihell(epochs: int = 100, lr: float = 0.1, seed: int = 0, log: TextIO | None = None) -> ToyRun:
    """Train the one-hot RNN to turn "hihell" into "ihello", printing its guess as it learns."""
    out = log or sys.stdout
    torch.manual_seed(seed)
    toy = hihell()
    model = OneHotRnn(len(toy.letters))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses, predicted, shown = [], "", ""
    for epoch in range(1, epochs + 1):
        outputs = model(toy.inputs)[0]  # (6, letters)
        loss = criterion(outputs, toy.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        predicted = toy.decode(outputs.argmax(1))
        if predicted != shown or epoch % 10 == 0 or epoch == epochs:
            print(f"epoch {epoch:3d}, loss {loss.item():.4f}, predicted string: {predicted}", file=out)
            shown = predicted
    return ToyRun(predicted, losses)


@dataclass
class ShapeCase:
    what: str
    layer: nn.RNNBase
    input: tuple[int, ...]
    hidden: tuple[int, ...] | None  # None: let the layer start from zeros
    seed_output: tuple[int, ...] | None  # the shapes the seed documents print, where they do
    seed_hidden: tuple[int, ...] | None


def shape_cases() -> list[ShapeCase]:
    return [
        ShapeCase("3 layers, bidirectional, batch_first: one letter", nn.RNN(
            4, 2, num_layers=3, batch_first=True, bidirectional=True), (1, 1, 4), (6, 1, 2), (1, 1, 4), (6, 1, 2)),
        ShapeCase("batch_first: the word 'hello', one-hot", nn.RNN(4, 2, batch_first=True),
                  (1, 5, 4), (1, 1, 2), (1, 5, 2), (1, 1, 2)),
        ShapeCase("batch_first: 3 words of 5 letters", nn.RNN(4, 2, batch_first=True),
                  (3, 5, 4), (1, 3, 2), (3, 5, 2), (1, 3, 2)),
        ShapeCase("sequence first (the default): 3 words of 5 letters", nn.RNN(4, 2),
                  (5, 3, 4), (1, 3, 2), None, None),
        ShapeCase("CharRnn: 8 characters x 512 windows, embedding 42, hidden 256", nn.RNN(42, 256),
                  (8, 512, 42), (1, 512, 256), (8, 512, 256), (1, 512, 256)),
        ShapeCase("2-layer LSTM, 64 streams x 8 characters: h and c", nn.LSTM(42, 512, 2),
                  (8, 64, 42), None, None, None),
    ]


def shape_of(state) -> tuple[int, ...] | tuple[tuple[int, ...], ...]:
    if isinstance(state, tuple):
        return tuple(tuple(s.shape) for s in state)
    return tuple(state.shape)


def rnn_shapes(log: TextIO | None = None) -> list[dict]:
    """Run each case and print input, output and hidden shapes. Output: (batch, seq, directions x
    hidden) with batch_first, else (seq, batch, ...); hidden: (layers x directions, batch, hidden)."""
    out = log or sys.stdout
    torch.manual_seed(0)
    rows = []
    for case in shape_cases():
        x = torch.randn(case.input)
        h0 = torch.randn(case.hidden) if case.hidden else None
        output, hidden = case.layer(x, h0)
        row = {"what": case.what, "input": tuple(x.shape), "output": tuple(output.shape),
               "hidden": shape_of(hidden), "seed_output": case.seed_output, "seed_hidden": case.seed_hidden}
        rows.append(row)
        print(f"{case.what}\n    input {row['input']}  output {row['output']}  hidden {row['hidden']}", file=out)
    return rows


def forward_and_grads(cell: nn.Module, x: torch.Tensor, state) -> list[torch.Tensor]:
    """The cell's output and the gradients of a loss on it, for the input and every weight."""
    x = x.detach().requires_grad_()
    cell.zero_grad()
    y = cell(x, state)
    y = torch.cat(y, 1) if isinstance(y, tuple) else y
    y.pow(2).sum().backward()
    return [y.detach(), x.grad] + [p.grad for _, p in sorted(cell.named_parameters())]


def check_cells(seed: int = 0, log: TextIO | None = None) -> dict[str, float]:
    """Largest difference between the hand-written cells and PyTorch's, output and gradients,
    with the same weights on random inputs."""
    out = log or sys.stdout
    torch.manual_seed(seed)
    worst = {}
    for ours, theirs in ((RNNCell, nn.RNNCell), (GRUCell, nn.GRUCell), (LSTMCell, nn.LSTMCell)):
        reference = theirs(10, 20)
        cell = ours(10, 20)
        cell.load_state_dict(reference.state_dict())
        x = torch.randn(7, 10)
        state = (torch.randn(7, 20), torch.randn(7, 20)) if ours is LSTMCell else torch.randn(7, 20)
        pairs = zip(forward_and_grads(cell, x, state), forward_and_grads(reference, x, state))
        worst[ours.__name__] = max(float((a - b).abs().max()) for a, b in pairs)
        print(f"{ours.__name__:<9} vs torch.nn.{theirs.__name__:<9} max |difference| "
              f"(output and gradients) {worst[ours.__name__]:.2e}", file=out)
    return worst
