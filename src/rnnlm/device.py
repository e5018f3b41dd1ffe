"""Choosing where tensors live."""

from __future__ import annotations

import torch

from rnnlm.errors import RnnlmError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present, else the CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RnnlmError("--device cuda: no CUDA device is available here (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise RnnlmError(f"--device must be auto, cpu or cuda (got {name!r})")
    return torch.device(name)


def set_threads(threads: int | None) -> None:
    """Threads for torch's CPU kernels; None keeps torch's default (one per physical core)."""
    if threads is None:
        return
    if threads < 1:
        raise RnnlmError(f"--threads must be >= 1 (got {threads})")
    torch.set_num_threads(threads)
