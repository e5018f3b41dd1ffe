"""A step of every stream in a block of slots, drawn and run as one TorchScript call that takes
no tensor in and gives none out.

A server's worker steps its streams while the event loop writes to their clients, sharing the
GIL. ``BatchedStep`` and ``draw`` as TorchScript give the GIL up once per call, but every tensor
handed to such a call from Python holds a Python object, and letting go of it inside the call
takes the GIL back for a moment (to drop that object's reference): a dozen tensors passed, a
dozen waits for a busy loop. Here the weights, the banned tokens and the slots' buffers are the
module's own attributes, the call takes numbers (the block's size, each row's temperature and
uniform number) and gives the drawn ids as plain ints: the GIL is given up when the call begins
and taken back when it ends, nothing in between.

The arithmetic is ``draw`` by temperature then ``BatchedStep.step_into``, the same functions, so
the same tokens and the same state bit for bit (``tests/test_slots.py``). Rows that truncate
(top-k, top-p), take the most likely token or record log-probabilities go the way before.
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor

from rnnlm.generation.batched_step import BatchedStep, gru_step, lstm_step, rnn_step
from rnnlm.generation.sampling import draw_by_temperature
from rnnlm.generation.scripted import scripted_module


class SlotStep(torch.nn.Module):
    """``kernel(n, rows, temperatures, uniforms)``: the ids drawn for the first ``n`` slots from
    their scores, then one step of the model on the first ``rows`` slots (token 0 past ``n``),
    their state and scores overwritten in place. ``state`` (layers, slots, H each: [h] or [h, c])
    and ``logits`` (slots, V) are the slots' buffers; set them again when they are replaced."""

    def __init__(self, stepper: BatchedStep, banned: Tensor, state: List[Tensor], logits: Tensor):
        super().__init__()
        self.cell, self.packed = stepper.cell, stepper.packed
        self.embedding, self.head_w, self.head_b = stepper.embedding, stepper.head_w, stepper.head_b
        self.params: List[List[Tensor]] = stepper.weights
        self.banned = banned
        self.state: List[Tensor] = state
        self.logits = logits

    def forward(self, n: int, rows: int, temperatures: List[float], uniforms: List[float]) -> List[int]:
        ids = draw_by_temperature(self.logits[:n], self.banned, temperatures, uniforms)  # (n,)
        out, p = self.logits[:rows], self.params
        if self.cell == "lstm":
            lstm_step(ids, self.state[0][:, :rows], self.state[1][:, :rows], self.embedding, p[0], p[1], self.head_w,
                      self.head_b, self.packed, out)
        elif self.cell == "gru":
            gru_step(ids, self.state[0][:, :rows], self.embedding, p[0], p[1], p[2], p[3], self.head_w, self.head_b,
                     self.packed, out)
        else:
            rnn_step(ids, self.state[0][:, :rows], self.embedding, p[0], p[1], self.head_w, self.head_b, self.packed,
                     out)
        return ids.tolist()


def slot_step(stepper: BatchedStep, banned: Tensor, state: List[Tensor], logits: Tensor) -> SlotStep:
    """A ``SlotStep`` compiled by TorchScript, or the module itself where that fails (the same
    numbers: see ``rnnlm.generation.scripted``)."""
    return scripted_module(SlotStep(stepper, banned, state, logits))
