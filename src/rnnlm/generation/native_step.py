"""The batch-1 step of an LSTM, GRU or RNN as one call of a C kernel (``rnnlm/native/recurrent_step.c``),
and the draw of a token as another.

The step's matrix-vector products stream the weights once; around them, from Python or
TorchScript, the gate arithmetic and the draw are a score of small calls, each costing more than
its work. The kernel does every layer's product and gates and the head in one call, with the GIL
given up for all of it (ctypes does). The first layer's input part depends on the token alone,
so for a vocabulary whose table of them is small (``TABLE_BYTES``) it is computed once for every
token, by the kernel's own sums, and a step reads one row of it instead of the embedding's
product. With more than one torch thread, a pool of that many threads (the caller and helpers
made once) shares each step, each thread its own blocks of the weights.

The numbers are the model's to float rounding (each output adds its inputs in order; the exp is
Cephes' to about an ulp), not torch's bit for bit: the text a seed gives can differ from the
torch path's where a draw falls within rounding of a boundary between two tokens.

The weights are copied into the kernel's blocks when the step is built: build it after any change
to the model. Every tensor handed to the kernel is checked for its size and type first: the
kernel trusts the addresses it is given.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from contextlib import contextmanager
from typing import Iterator

import torch

from rnnlm.models.recurrent import RecurrentLM, State
from rnnlm.native.build import library

CELLS = {"rnn": 0, "lstm": 1, "gru": 2}  # the kernel's codes
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
TABLE_BYTES = 32 * 2**20  # the largest table of first-layer input parts kept (V x G*H floats)
UNITS, COLUMNS = 16, 64  # the kernel's blocks: units of a layer, logits of the head
POINTER = ctypes.c_void_p


def in_blocks(w: torch.Tensor, gates: int, block: int) -> torch.Tensor:
    """``w`` (K, gates x N), each gate's N columns side by side, as the kernel's blocks (N / block,
    K, gates x block), contiguous: block b holds columns b x block onwards of every gate, the
    last one padded with zeros."""
    k, n = w.shape[0], w.shape[1] // gates
    padded = torch.nn.functional.pad(w.reshape(k, gates, n), (0, -n % block))  # (K, gates, N')
    return padded.reshape(k, gates, -1, block).permute(2, 0, 1, 3).reshape(-1, k, gates * block).contiguous()


class Model(ctypes.Structure):
    """``struct rnnlm_single_model``: the sizes and the weights' addresses."""

    _fields_ = [("cell", ctypes.c_int), ("layers", ctypes.c_int), ("hidden", ctypes.c_int),
                ("embed", ctypes.c_int), ("vocab", ctypes.c_int), ("params", ctypes.POINTER(POINTER)),
                ("input_table", POINTER)]


def kernels() -> ctypes.CDLL | None:
    """The library with its functions' argument types, or None where it cannot be had."""
    lib = library("recurrent_step")
    if lib is not None:
        lib.rnnlm_single_step.argtypes = [POINTER, POINTER, ctypes.c_long] + [POINTER] * 5  # pool, model, ...
        lib.rnnlm_single_step.restype = ctypes.c_int
        lib.rnnlm_single_input_table.argtypes = [ctypes.POINTER(Model), POINTER]
        lib.rnnlm_single_input_table.restype = None
        lib.rnnlm_pool_new.argtypes, lib.rnnlm_pool_new.restype = [ctypes.c_int], POINTER
        lib.rnnlm_pool_free.argtypes, lib.rnnlm_pool_free.restype = [POINTER], None
        lib.rnnlm_single_run.argtypes = [POINTER, POINTER, POINTER, POINTER, ctypes.c_float, POINTER, ctypes.c_int,
                                         ctypes.c_int] + [POINTER] * 6
        lib.rnnlm_single_run.restype = ctypes.c_int
        lib.rnnlm_draw.argtypes = [POINTER, POINTER, ctypes.c_int, ctypes.c_float, ctypes.c_double]
        lib.rnnlm_draw.restype = ctypes.c_long
        lib.rnnlm_slots_step.argtypes = [POINTER, POINTER, ctypes.c_int, ctypes.c_int, ctypes.c_long] + [POINTER] * 7
        lib.rnnlm_slots_step.restype = ctypes.c_int
        lib.rnnlm_slots_run.argtypes = lib.rnnlm_slots_step.argtypes
        lib.rnnlm_slots_run.restype = ctypes.c_int
    return lib


def kernel_input(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """``tensor`` as the kernel reads it: ``size`` contiguous float32 numbers on the CPU."""
    if tensor.numel() != size:
        raise ValueError(f"the native kernel expected {size} numbers, got a tensor of shape {tuple(tensor.shape)}")
    if tensor.dtype is torch.float32 and tensor.device.type == "cpu" and tensor.is_contiguous():
        return tensor
    return tensor.to("cpu", torch.float32).contiguous()


def free_pools(lib: ctypes.CDLL, pools: dict[tuple[int, int], int | None]) -> None:
    """Stop and join this process's pool threads (a forked child's copies of its parent's are not its own)."""
    for (_, pid), pool in pools.items():
        if pool and pid == os.getpid():
            lib.rnnlm_pool_free(pool)
    pools.clear()


class NativeStep:
    """``step(token, state)``: logits (V,) and the new state after one token of one stream, as
    ``SingleStreamStep.step`` gives them. ``NativeStep.of(model)`` is None where it does not apply."""

    def __init__(self, model: RecurrentLM, lib: ctypes.CDLL, table: bool = True):
        config = model.config
        self.cell, self.layers, self.hidden = config.cell, config.layers, config.hidden
        embedding = model.embedding.weight.detach()
        self.vocab = model.head.out_features
        row = GATES[self.cell] * UNITS * -(-self.hidden // UNITS)  # a token's row of the table
        # copies, kept alive here: the kernel holds their addresses
        self.params = [embedding.clone(memory_format=torch.contiguous_format)]
        for i in range(self.layers):
            rnn, k = (model.rnn[i], 0) if config.locked_dropout else (model.rnn, i)
            w = torch.cat([getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")], 1).detach()
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{k}").detach(), getattr(rnn, f"bias_hh_l{k}").detach()
            per = GATES[self.cell]
            biases = [b_ih, b_hh] if self.cell == "gru" else [b_ih + b_hh]  # a GRU's state part kept apart
            self.params += [in_blocks(w.t(), per, UNITS),
                            torch.stack([in_blocks(b[None], per, UNITS)[:, 0] for b in biases], 1).contiguous()]
        self.params += [in_blocks(model.head.weight.detach().t(), 1, COLUMNS),
                        in_blocks(model.head.bias.detach()[None], 1, COLUMNS).flatten()]
        self.addresses = (POINTER * len(self.params))(*[p.data_ptr() for p in self.params])
        self.model = Model(CELLS[self.cell], self.layers, self.hidden, embedding.shape[1], self.vocab,
                           self.addresses, None)
        self.table = None
        if table and self.vocab * row * 4 <= TABLE_BYTES:
            self.table = torch.empty(self.vocab, row)  # (V, blocks x G x UNITS)
            lib.rnnlm_single_input_table(self.model, self.table.data_ptr())
            self.model.input_table = self.table.data_ptr()
        self.lib, self.at = lib, ctypes.addressof(self.model)
        self.run, self.run_many, self.sample = lib.rnnlm_single_step, lib.rnnlm_single_run, lib.rnnlm_draw
        self.shape = (self.layers, 1, self.hidden)
        self.pools: dict[tuple[int, int], int | None] = {}  # (threads, process id) -> the kernel's pool
        self.pool_lock = threading.Lock()  # one step at a time on a pool; a second caller steps alone
        weakref.finalize(self, free_pools, lib, self.pools)

    def pool(self, threads: int) -> int | None:
        """The kernel's pool of ``threads`` threads in this process (made at first use; a forked
        child makes its own), or None where its threads could not be had."""
        key = (threads, os.getpid())
        if key not in self.pools:
            self.pools[key] = self.lib.rnnlm_pool_new(threads)
        return self.pools[key]

    @classmethod
    def of(cls, model: RecurrentLM, table: bool = True) -> NativeStep | None:
        """The native step for ``model``: in float32 on the CPU, where the kernel builds."""
        weight = model.embedding.weight
        if model.config.cell not in CELLS or weight.device.type != "cpu" or weight.dtype != torch.float32:
            return None
        lib = kernels()
        return None if lib is None else cls(model, lib, table)

    def inputs(self, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        """h and c (layers, 1, H) as the kernel reads them; c is h again but for an LSTM (never read)."""
        size = self.layers * self.hidden
        if self.cell == "lstm":
            return kernel_input(state[0], size), kernel_input(state[1], size)
        h = kernel_input(state, size)
        return h, h

    def outputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fresh h, c (the h again but for an LSTM) and logits: a state may be shared, never written."""
        h = torch.empty(self.shape)
        return h, (torch.empty(self.shape) if self.cell == "lstm" else h), torch.empty(self.vocab)

    def new_state(self, h: torch.Tensor, c: torch.Tensor) -> State:
        return (h, c) if self.cell == "lstm" else h

    @contextmanager
    def threads(self) -> Iterator[int | None]:
        """The pool for torch's number of threads (None: the caller steps alone, as with one
        thread, or while another caller holds the pool)."""
        threads = torch.get_num_threads()
        if threads == 1 or not self.pool_lock.acquire(blocking=False):
            yield None
            return
        try:
            yield self.pool(threads)
        finally:
            self.pool_lock.release()

    def check(self, code: int) -> None:
        """The kernel's return code as an error: 1 a cell it does not step, 2 no scratch memory."""
        if code == 1:
            raise RuntimeError(f"the native kernel does not step a {self.cell}")
        if code == 2:
            raise MemoryError("the native kernel could not have its scratch memory")

    def step(self, token: int, state: State) -> tuple[torch.Tensor, State]:
        if not 0 <= token < self.vocab:
            raise IndexError(f"token {token} is outside the vocabulary of {self.vocab}")
        (h, c), (h_new, c_new, logits) = self.inputs(state), self.outputs()
        with self.threads() as pool:
            self.check(self.run(pool, self.at, token, h.data_ptr(), c.data_ptr(), h_new.data_ptr(), c_new.data_ptr(),
                                logits.data_ptr()))
        return logits, self.new_state(h_new, c_new)

    def run_tokens(self, logits: torch.Tensor, bias: torch.Tensor, temperature: float, uniforms: list[float],
                   state: State, step_last: bool = True) -> tuple[list[int], torch.Tensor, State]:
        """``len(uniforms)`` tokens in one call: each drawn as ``draw`` draws it from the logits
        before it, then stepped. The ids, and the logits and state after the last token (unset
        with ``step_last`` False: the last token is drawn but not stepped)."""
        logits, bias = kernel_input(logits, self.vocab), kernel_input(bias, self.vocab)
        (h, c), (h_new, c_new, out) = self.inputs(state), self.outputs()
        count = len(uniforms)
        tokens, numbers = (ctypes.c_long * count)(), (ctypes.c_double * count)(*uniforms)
        with self.threads() as pool:
            self.check(self.run_many(pool, self.at, logits.data_ptr(), bias.data_ptr(), temperature, numbers, count,
                                     int(step_last), h.data_ptr(), c.data_ptr(), tokens, h_new.data_ptr(),
                                     c_new.data_ptr(), out.data_ptr()))
        return list(tokens), out, self.new_state(h_new, c_new)

    def draw(self, logits: torch.Tensor, bias: torch.Tensor, temperature: float, uniform: float) -> int:
        """A token from softmax((logits + bias) / temperature), (V,) each, at ``uniform`` in [0, 1):
        ``draw``'s token but for float rounding (no top-k or top-p; a temperature above 0)."""
        logits, bias = kernel_input(logits, self.vocab), kernel_input(bias, self.vocab)
        return self.sample(logits.data_ptr(), bias.data_ptr(), self.vocab, temperature, uniform)
