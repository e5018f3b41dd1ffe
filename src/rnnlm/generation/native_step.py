"""The batch-1 step of an LSTM or RNN as one call of a C kernel (``rnnlm/native/single_step.c``).

The step's matrix-vector products stream the weights once; around them, from Python or
TorchScript, the gate arithmetic is a score of small calls, each costing more than its work. The
kernel does every layer's product and gates and the head in one call, with the GIL given up for
all of it (ctypes does). The first layer's input part depends on the token alone, so for a
vocabulary whose table of them is small (``TABLE_BYTES``) it is computed once for every token,
by the kernel's own sums, and a step reads one row of it instead of the embedding's product.

The numbers are the model's to float rounding (each output adds its inputs in order; the exp is
Cephes' to about an ulp), not torch's bit for bit: the text a seed gives can differ from the
torch path's where a draw falls within rounding of a boundary between two tokens.

The weights are copied (transposed) when the step is built: build it after any change to the model.
"""

from __future__ import annotations

import ctypes

import torch

from rnnlm.models.recurrent import RecurrentLM, State
from rnnlm.native.build import library

CELLS = {"rnn": 0, "lstm": 1}  # the kernel's codes; a GRU keeps the torch step
GATES = {"rnn": 1, "lstm": 4}
TABLE_BYTES = 32 * 2**20  # the largest table of first-layer input parts kept (V x G*H floats)
POINTER = ctypes.c_void_p


class Model(ctypes.Structure):
    """``struct rnnlm_single_model``: the sizes and the weights' addresses."""

    _fields_ = [("cell", ctypes.c_int), ("layers", ctypes.c_int), ("hidden", ctypes.c_int),
                ("embed", ctypes.c_int), ("vocab", ctypes.c_int), ("params", ctypes.POINTER(POINTER)),
                ("input_table", POINTER)]


def kernels() -> ctypes.CDLL | None:
    """The library with its functions' argument types, or None where it cannot be had."""
    lib = library("single_step")
    if lib is not None:
        lib.rnnlm_single_step.argtypes = [ctypes.POINTER(Model), ctypes.c_long] + [POINTER] * 5
        lib.rnnlm_single_step.restype = ctypes.c_int
        lib.rnnlm_single_input_table.argtypes = [ctypes.POINTER(Model), POINTER]
        lib.rnnlm_single_input_table.restype = None
        lib.rnnlm_draw.argtypes = [POINTER, POINTER, ctypes.c_int, ctypes.c_float, ctypes.c_double]
        lib.rnnlm_draw.restype = ctypes.c_long
    return lib


class NativeStep:
    """``step(token, state)``: logits (V,) and the new state after one token of one stream, as
    ``SingleStreamStep.step`` gives them. ``NativeStep.of(model)`` is None where it does not apply."""

    def __init__(self, model: RecurrentLM, lib: ctypes.CDLL, table: bool = True):
        config = model.config
        self.cell, self.layers, self.hidden = config.cell, config.layers, config.hidden
        embedding = model.embedding.weight.detach()
        self.vocab, gates = model.head.out_features, GATES[self.cell] * self.hidden
        self.params = [embedding.contiguous()]  # kept alive: the kernel holds their addresses
        for i in range(self.layers):
            rnn, k = (model.rnn[i], 0) if config.locked_dropout else (model.rnn, i)
            w = torch.cat([getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")], 1).detach()
            b = getattr(rnn, f"bias_ih_l{k}").detach() + getattr(rnn, f"bias_hh_l{k}").detach()
            self.params += [w.t().contiguous(), b.contiguous()]  # (in + H, G*H), (G*H,)
        self.params += [model.head.weight.detach().t().contiguous(), model.head.bias.detach().contiguous()]  # (H, V)
        self.addresses = (POINTER * len(self.params))(*[p.data_ptr() for p in self.params])
        self.model = Model(CELLS[self.cell], self.layers, self.hidden, embedding.shape[1], self.vocab,
                           self.addresses, None)
        self.table = None
        if table and self.vocab * gates * 4 <= TABLE_BYTES:
            self.table = torch.empty(self.vocab, gates)  # (V, G*H)
            lib.rnnlm_single_input_table(self.model, self.table.data_ptr())
            self.model.input_table = self.table.data_ptr()
        self.run, self.at, self.sample = lib.rnnlm_single_step, ctypes.pointer(self.model), lib.rnnlm_draw
        self.shape = (self.layers, 1, self.hidden)

    @classmethod
    def of(cls, model: RecurrentLM, table: bool = True) -> NativeStep | None:
        """The native step for ``model``: an LSTM or RNN in float32 on the CPU, where the kernel builds."""
        weight = model.embedding.weight
        if model.config.cell not in CELLS or weight.device.type != "cpu" or weight.dtype != torch.float32:
            return None
        lib = kernels()
        return None if lib is None else cls(model, lib, table)

    def step(self, token: int, state: State) -> tuple[torch.Tensor, State]:
        if not 0 <= token < self.vocab:
            raise IndexError(f"token {token} is outside the vocabulary of {self.vocab}")
        lstm = self.cell == "lstm"
        h, c = (state[0].contiguous(), state[1].contiguous()) if lstm else (state.contiguous(), None)  # (layers, 1, H)
        h_new, logits = torch.empty(self.shape), torch.empty(self.vocab)  # fresh: a state may be shared, never written
        c_new = torch.empty(self.shape) if lstm else h_new
        failed = self.run(self.at, token, h.data_ptr(), (c if lstm else h).data_ptr(), h_new.data_ptr(),
                          c_new.data_ptr(), logits.data_ptr())
        if failed:
            raise MemoryError("the native step could not allocate its scratch memory")
        return logits, ((h_new, c_new) if lstm else h_new)

    def draw(self, logits: torch.Tensor, bias: torch.Tensor, temperature: float, uniform: float) -> int:
        """A token from softmax((logits + bias) / temperature), (V,) each, at ``uniform`` in [0, 1):
        ``draw``'s token but for float rounding (no top-k or top-p; a temperature above 0)."""
        logits, bias = logits.contiguous(), bias.contiguous()
        return self.sample(logits.data_ptr(), bias.data_ptr(), self.vocab, temperature, uniform)
