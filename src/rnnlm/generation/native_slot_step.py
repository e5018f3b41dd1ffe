"""A step of every stream in a block of slots by the C kernel (``rnnlm_slots_step`` in
``rnnlm/native/recurrent_step.c``): the draw by temperature and the model's step, one call, in
place on the slots' buffers, as ``SlotStep`` does through TorchScript.

The kernel reads each block of weights once for a few streams together, and sums every output
as the batch-1 kernel sums it for a stream alone: a stream's scores and state are the same bit
for bit whether it is stepped alone (``NativeStep``, as ``GenerationSession.complete`` steps it)
or with others, so a server's text for a seed is its text alone, whoever else was being served.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Sequence

import torch

from rnnlm.generation.native_step import NativeStep, kernel_input
from rnnlm.models.recurrent import State, split_state


class NativeSlotStep:
    """``kernel(n, rows, temperatures, uniforms)``: the ids drawn for the first ``n`` slots from
    their scores, then one step of the model on those slots, their state and scores overwritten in
    place (``rows`` is not used: the kernel steps exactly ``n``); ``run_steps``: several such
    steps in one call. ``step(ids)``: the step alone, for ids drawn elsewhere. ``state`` ([h] or
    [h, c], (layers, slots, H) each) and ``logits`` (slots, V) are the slots' buffers; set them
    again when they are replaced."""

    def __init__(self, native: NativeStep, bias: torch.Tensor, state: list[torch.Tensor], logits: torch.Tensor):
        self.native, self.state, self.logits = native, state, logits
        self.bias = kernel_input(bias, native.vocab)  # (V,): -inf for the banned tokens

    def buffers(self, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """h and c (c is h again but for an LSTM) and the number of slots, checked: the kernel
        trusts the addresses it is given."""
        native, logits = self.native, self.logits
        slots = logits.shape[0]
        if not 0 <= n <= slots:
            raise ValueError(f"{n} streams do not fit {slots} slots")
        if logits.shape[1:] != (native.vocab,):
            raise ValueError(f"the slots' scores have shape {tuple(logits.shape)}, not (slots, {native.vocab})")
        for buffer in (*self.state, logits):
            if buffer.dtype is not torch.float32 or buffer.device.type != "cpu" or not buffer.is_contiguous():
                raise ValueError("the slots' buffers must be contiguous float32 tensors on the CPU")
        for buffer in self.state:
            if tuple(buffer.shape) != (native.layers, slots, native.hidden):
                raise ValueError(f"a state buffer of shape {tuple(buffer.shape)}, not "
                                 f"({native.layers}, {slots}, {native.hidden})")
        h = self.state[0]
        return h, (self.state[1] if native.cell == "lstm" else h), slots

    def __call__(self, n: int, rows: int, temperatures: list[float], uniforms: list[float]) -> list[int]:
        return self.run_steps(n, temperatures, [uniforms])[0]

    def run_steps(self, n: int, temperatures: list[float], uniforms: list[list[float]]) -> list[list[int]]:
        """``len(uniforms)`` steps of the first ``n`` slots in one call, each as ``kernel(n, ...)``
        does it: stream r's token drawn at ``uniforms[t][r]``, then the block stepped. The ids,
        step after step."""
        steps = len(uniforms)
        if any(len(row) != n for row in uniforms) or len(temperatures) != n:
            raise ValueError(f"every step draws for the {n} streams")
        h, c, slots = self.buffers(n)
        tokens = (ctypes.c_long * (n * steps))()
        heat = (ctypes.c_float * n)(*temperatures)
        numbers = (ctypes.c_double * (n * steps))(*(u for row in uniforms for u in row))
        self.run(self.native.lib.rnnlm_slots_run, n, steps, slots, h, c, heat, numbers, tokens)
        return [tokens[t * n : (t + 1) * n] for t in range(steps)]

    def step(self, ids: list[int]) -> None:
        """One step of the first ``len(ids)`` slots on the tokens ``ids``."""
        self.read([[i] for i in ids])

    def read(self, tokens: list[list[int]]) -> None:
        """Steps of the first ``len(tokens)`` slots on their tokens, ``tokens[r]`` for slot r
        (as many for each), layer by layer: a layer's weights stay in cache for all its tokens,
        and each output is summed as a step at a time sums it. The scores are those after the last."""
        n, count = len(tokens), len(tokens[0]) if tokens else 0
        h, c, slots = self.buffers(n)
        if n == 0 or count == 0:
            return
        vocab = self.native.vocab
        flat = [i for row in tokens for i in row]
        if any(len(row) != count for row in tokens):
            raise ValueError("every slot reads as many tokens")
        if any(not 0 <= i < vocab for i in flat):
            raise IndexError(f"a token outside the vocabulary of {vocab}")
        ids = (ctypes.c_long * len(flat))(*flat)
        self.run(self.native.lib.rnnlm_slots_step, n, count, slots, h, c, None, None, ids)

    def run(self, kernel: Callable[..., int], n: int, count: int, slots: int, h: torch.Tensor, c: torch.Tensor,
            temperatures, uniforms, tokens) -> None:
        """``kernel`` (``rnnlm_slots_step``: ``count`` tokens each; ``rnnlm_slots_run``: ``count``
        drawn steps) on the slots' buffers, by the native step's threads."""
        native = self.native
        with native.threads() as pool:
            native.check(kernel(pool, native.at, n, count, slots, h.data_ptr(), c.data_ptr(), self.logits.data_ptr(),
                                self.bias.data_ptr(), temperatures, uniforms, tokens))


def read_streams(native: NativeStep, states: Sequence[State | None],
                 tokens: list[list[int]]) -> tuple[torch.Tensor, list[State]]:
    """``tokens[r]`` (as many for each) read by stream r from its own state (None: zeros), all
    streams together by the kernel: the scores after the last token (N, V) and each stream's new
    state (layers, 1, H each), views of buffers of their own."""
    buffers = [torch.zeros(native.layers, len(states), native.hidden) for _ in range(2 if native.cell == "lstm" else 1)]
    for r, state in enumerate(states):
        if state is not None:
            for buffer, part in zip(buffers, state if isinstance(state, tuple) else (state,)):
                buffer[:, r].copy_(part[:, 0])
    logits = torch.empty(len(states), native.vocab)  # (N, V)
    NativeSlotStep(native, torch.zeros(native.vocab), buffers, logits).read(tokens)
    return logits, split_state(tuple(buffers) if len(buffers) == 2 else buffers[0])
