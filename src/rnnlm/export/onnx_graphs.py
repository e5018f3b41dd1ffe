"""A run as ONNX: two graphs any ONNX runtime runs, with the tokenizer and vocab beside them.

    OUT/step.onnx       one token per stream: ids (N,), h (layers, N, H) [, c] -> logits (N, V), h_out [, c_out]
    OUT/prompt.onnx     a whole prompt: ids (N, T), h [, c] -> logits (N, V) after its last token, h_out [, c_out]
    OUT/tokenizer.json  the tokenizer, vocab and draw rules (``rnnlm.export.spec``)
    OUT/model.json      the model's shape and card

``c`` is an LSTM's cell state; N (and T) are dynamic. Generation reads the prompt once with
``prompt.onnx`` and then costs one ``step.onnx`` call a token, O(1) in the length so far. The
graphs come from PyTorch's TorchScript-based exporter (the fused recurrent modules become ONNX's
RNN, GRU and LSTM operators) and are checked with onnxruntime before they are written: logits
and states (relative to their size) within ``TOLERANCE`` of torch's over a prompt and
``CHECK_STEPS`` steps.
"""

from __future__ import annotations

import io
import warnings
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnlm.atomic import write_bytes, write_json
from rnnlm.errors import RnnlmError
from rnnlm.export.outputs import check_new_folder, folder_into_place
from rnnlm.export.spec import model_spec, tokenizer_spec
from rnnlm.models.dropout import Dropout
from rnnlm.models.recurrent import LockedDropout, RecurrentLM
from rnnlm.runfolder import Run

STEP, PROMPT, TOKENIZER, MODEL = "step.onnx", "prompt.onnx", "tokenizer.json", "model.json"
OPSET = 17
TOLERANCE = 1e-4  # largest difference of a logit or state between onnxruntime and torch
CHECK_STEPS = 200
CHECK_PROMPT = 64  # tokens of the prompt the prompt graph is checked on


class StepGraph(nn.Module):
    """The model for one token of each stream."""

    def __init__(self, model: RecurrentLM):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, new = self.model(ids[:, None], state if len(state) == 2 else state[0])  # (N, 1, V)
        return (logits[:, 0], *(new if isinstance(new, tuple) else (new,)))


class PromptGraph(nn.Module):
    """The model over a whole prompt; only the last token's logits come out."""

    def __init__(self, model: RecurrentLM):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, new = self.model(ids, state if len(state) == 2 else state[0])  # (N, T, V)
        return (logits[:, -1], *(new if isinstance(new, tuple) else (new,)))


def state_names(cell: str) -> tuple[list[str], list[str]]:
    """The names of the state's inputs and outputs."""
    return (["h", "c"], ["h_out", "c_out"]) if cell == "lstm" else (["h"], ["h_out"])


def without_dropout(model: RecurrentLM) -> RecurrentLM:
    """A copy of ``model`` on the CPU, for inference, with every dropout's rate 0: the exporter
    writes the dropout between the layers of a fused recurrent module into the graph as if it
    trained."""
    copy = deepcopy(model).cpu().eval()
    for module in copy.modules():
        if isinstance(module, (nn.RNNBase, Dropout, LockedDropout)):
            setattr(module, "dropout" if isinstance(module, nn.RNNBase) else "p", 0.0)
    return copy


def graph_bytes(graph: nn.Module, ids: torch.Tensor, cell: str) -> bytes:
    """The ONNX model of ``graph`` traced on ``ids`` (one stream), batch and time dynamic."""
    model = graph.model
    state = model.init_state(1)
    state = state if isinstance(state, tuple) else (state,)
    ins, outs = state_names(cell)
    dynamic = {"ids": {0: "N", 1: "T"} if ids.dim() == 2 else {0: "N"}, "logits": {0: "N"},
               **{name: {1: "N"} for name in ins + outs}}
    f = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's notices and the tracer's; the graphs are checked
        torch.onnx.export(graph, (ids, *state), f, input_names=["ids", *ins], output_names=["logits", *outs],
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    return f.getvalue()


def onnx_session(data: bytes):
    """An onnxruntime session of a graph, on one thread (the checks run tiny batches)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def state_arrays(state) -> list[np.ndarray]:
    return [s.numpy() for s in (state if isinstance(state, tuple) else (state,))]


def difference(got: list[np.ndarray], ours: list) -> float:
    """The largest difference of the logits, and of the states relative to their size (an
    LSTM's cell state can grow to hundreds, where float32 keeps six or seven digits)."""
    logits = float(np.abs(got[0] - ours[0]).max())
    states = (float((np.abs(a - b) / np.maximum(1.0, np.abs(b))).max()) for a, b in zip(got[1:], ours[1:]))
    return max(logits, *states)


def largest_difference(model: RecurrentLM, step: bytes, prompt: bytes, banned: list[int]) -> float:
    """The largest ``difference`` between onnxruntime's logits and states and torch's: the prompt
    graph on a random prompt of two streams, then ``CHECK_STEPS`` steps of the step graph, each
    stream fed its most likely token."""
    ins, _ = state_names(model.config.cell)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.vocab_size, (2, CHECK_PROMPT), generator=gen)
    step_session, prompt_session = onnx_session(step), onnx_session(prompt)
    with torch.inference_mode():
        logits, state = model(ids, model.init_state(2))
        got = prompt_session.run(None, {"ids": ids.numpy(), **dict(zip(ins, state_arrays(model.init_state(2))))})
        ours = [logits[:, -1].numpy(), *state_arrays(state)]
        worst = difference(got, ours)
        onnx_state = got[1:]
        for _ in range(CHECK_STEPS):
            scores = logits[:, -1].clone()
            scores[:, banned] = float("-inf")
            token = scores.argmax(-1)  # (2,)
            logits, state = model(token[:, None], state)
            got = step_session.run(None, {"ids": token.numpy(), **dict(zip(ins, onnx_state))})
            ours = [logits[:, -1].numpy(), *state_arrays(state)]
            worst = max(worst, difference(got, ours))
            onnx_state = got[1:]
    return worst


@dataclass
class OnnxExport:
    folder: Path
    sizes: dict[str, int]  # bytes of each file written
    difference: float  # the largest difference from torch's logits and states (``largest_difference``)


def export_onnx(run: Run, out: str | Path) -> OnnxExport:
    """Write the ONNX export of ``run`` (loaded on the CPU) into the new folder ``out``; the graphs
    are checked with onnxruntime first (``TOLERANCE``)."""
    out = check_new_folder(out, "onnx")
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        raise RnnlmError("exporting to ONNX needs the onnx and onnxruntime packages: pip install 'rnnlm[onnx]'") \
            from None
    model = without_dropout(run.model)
    tokens = tokenizer_spec(run.tokenizer, run.vocab)
    step = graph_bytes(StepGraph(model), torch.zeros(1, dtype=torch.long), model.config.cell)
    prompt = graph_bytes(PromptGraph(model), torch.zeros(1, 2, dtype=torch.long), model.config.cell)
    difference = largest_difference(model, step, prompt, tokens["banned"])
    if not difference <= TOLERANCE:
        raise RnnlmError(f"{run.folder}: onnxruntime's logits differ from torch's by {difference:.2g} (more than "
                         f"{TOLERANCE:g}); nothing written")
    files = {STEP: step, PROMPT: prompt}
    with folder_into_place(out, "onnx") as tmp:
        for name, data in files.items():
            write_bytes(tmp / name, data)
        write_json(tmp / TOKENIZER, tokens)
        write_json(tmp / MODEL, {**model_spec(run), "graphs": {"step": STEP, "prompt": PROMPT},
                                 "tokenizer": TOKENIZER, "card": run.card()})
        sizes = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
    return OnnxExport(out, sizes, difference)
