"""The page's weights, as compact as asked: fp32 (exact), fp16, or 8 bits with a scale per row.

Each matrix travels as base64 of its little-endian values; vectors (biases, scales) stay fp32.
8-bit rows are symmetric: ``w ~ q * scale`` with ``q`` in -127..127 and ``scale = max|row| / 127``.
``dequantized`` gives, in torch, the very numbers the page computes with, so what the
compression costs is measured on the model itself (``compression_cost``): the bits per character
of the validation split, and how far the greedy text follows the fp32 model's.
"""

from __future__ import annotations

import base64
from copy import deepcopy
from dataclasses import dataclass, replace

import numpy as np
import torch

from rnnlm.errors import RnnlmError
from rnnlm.evaluation.runs import evaluate_run
from rnnlm.generation.session import GenerationSession
from rnnlm.models.recurrent import RecurrentLM
from rnnlm.runfolder import Run

FORMATS = ("fp32", "fp16", "int8")
MATRIX_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}  # bytes a weight of a matrix takes
GREEDY_TOKENS = 200  # tokens of greedy text the compressed model is compared on


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).decode()


def page_tensors(model: RecurrentLM) -> dict[str, torch.Tensor]:
    """The tensors the page's forward pass reads, by its names: ``embedding``, ``l{i}.w_ih``,
    ``l{i}.w_hh``, ``l{i}.b_ih``, ``l{i}.b_hh``, ``head.w`` (absent when tied), ``head.b``."""
    config = model.config
    tensors = {"embedding": model.embedding.weight}
    for i in range(config.layers):
        rnn, k = (model.rnn[i], 0) if config.locked_dropout else (model.rnn, i)
        for part in ("w_ih", "w_hh", "b_ih", "b_hh"):
            kind, which = part.split("_")
            tensors[f"l{i}.{part}"] = getattr(rnn, f"{'weight' if kind == 'w' else 'bias'}_{which}_l{k}")
    if not config.tie:
        tensors["head.w"] = model.head.weight
    tensors["head.b"] = model.head.bias
    return {name: t.detach().float().cpu() for name, t in tensors.items()}


def row_scales(matrix: torch.Tensor) -> torch.Tensor:
    """8-bit scale of each row; a row of zeros gets 1 (any scale reads it back exactly)."""
    top = matrix.abs().amax(1)
    return torch.where(top > 0, top / 127, torch.ones_like(top))


def dequantized(tensor: torch.Tensor, fmt: str) -> torch.Tensor:
    """``tensor`` as the page reads it back in ``fmt``."""
    if tensor.dim() == 1 or fmt == "fp32":
        return tensor
    if fmt == "fp16":
        return tensor.half().float()
    scales = row_scales(tensor)
    return (tensor / scales[:, None]).round().clamp(-127, 127) * scales[:, None]


def encoded(tensor: torch.Tensor, fmt: str) -> dict:
    """One tensor as the page stores it: its shape, its format and base64 of its values."""
    shape = list(tensor.shape)
    if tensor.dim() == 1 or fmt == "fp32":
        return {"shape": shape, "format": "fp32", "data": b64(tensor.numpy().astype(np.float32))}
    if fmt == "fp16":
        return {"shape": shape, "format": "fp16", "data": b64(tensor.numpy().astype(np.float16))}
    scales = row_scales(tensor)
    q = (tensor / scales[:, None]).round().clamp(-127, 127).to(torch.int8)
    return {"shape": shape, "format": "int8", "data": b64(q.numpy()), "scales": b64(scales.numpy())}


def encoded_weights(model: RecurrentLM, fmt: str) -> dict[str, dict]:
    return {name: encoded(t, fmt) for name, t in page_tensors(model).items()}


def weight_bytes(model: RecurrentLM, fmt: str) -> int:
    """Bytes of the page's weights in ``fmt``, before base64."""
    total = 0
    for t in page_tensors(model).values():
        total += t.numel() * (4 if t.dim() == 1 else MATRIX_BYTES[fmt]) + (4 * t.shape[0] if fmt == "int8" and
                                                                             t.dim() == 2 else 0)
    return total


def compressed_model(model: RecurrentLM, fmt: str) -> RecurrentLM:
    """A copy of ``model`` holding the weights the page computes with."""
    copy = deepcopy(model).eval()
    with torch.no_grad():
        for param in copy.parameters():
            param.copy_(dequantized(param.detach().float(), fmt).to(param.dtype))
    return copy


@dataclass
class Cost:
    """What the compression costs, measured on the run."""

    bits_per_char: float | None  # the fp32 model's, on the validation split (None: not measured)
    compressed_bits_per_char: float | None
    greedy_agree: int  # leading greedy tokens (empty prime) the compressed model writes as the fp32 one
    greedy_tokens: int  # of this many
    why_not_measured: str = ""


def greedy_ids(run: Run) -> list[int]:
    session = GenerationSession(run)
    return [piece.token.id for piece in session.complete("", GREEDY_TOKENS, greedy=True, logprobs=0)
            if piece.token is not None]


def compression_cost(run: Run, fmt: str) -> Cost:
    """Bits per character of the validation split with fp32 and ``fmt`` weights, and how many
    greedy tokens agree; fp32 costs nothing and is not measured."""
    if fmt == "fp32":
        return Cost(None, None, GREEDY_TOKENS, GREEDY_TOKENS)
    small = replace(run, model=compressed_model(run.model, fmt))
    ours, theirs = greedy_ids(run), greedy_ids(small)
    agree = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    try:
        before, after = evaluate_run(run).bits_per_char, evaluate_run(small).bits_per_char
    except RnnlmError as e:
        return Cost(None, None, agree, len(ours), str(e))
    return Cost(before, after, agree, len(ours))
