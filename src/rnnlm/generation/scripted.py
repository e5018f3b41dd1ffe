"""A function run as TorchScript: the whole of it one call that gives up the GIL until it returns.

A server's worker thread steps the model while the event loop writes to the clients, in one
process. Every torch call made from Python gives the GIL up while its kernel runs and must take
it back afterwards; while the loop is busy, taking it back waits for the loop's next switch
(``sys.setswitchinterval``), so a step made of a few dozen small calls waits a few dozen times.
TorchScript runs a whole function in C++ and holds the GIL for none of it: the step and the draw
are each one wait at most. The same operations run in the same order, so the numbers are the
eager function's, bit for bit (``tests/test_steps.py``; CPU fusion, which would change them, is
off in torch by default and this module leaves it so).

TorchScript is deprecated in favour of ``torch.compile`` (which on the CPU found no gain for
these steps: benchmarks/README.md, "torch.compile"); where scripting fails (a torch without it,
or sources not at hand), the eager function is used, with the same results.
"""

from __future__ import annotations

import threading
import warnings
from typing import Callable

import torch

_compiled: dict[Callable, Callable] = {}
_lock = threading.Lock()


def scripted(fn: Callable) -> Callable:
    """``fn`` compiled by ``torch.jit.script`` once per process, or ``fn`` itself where that fails."""
    found = _compiled.get(fn)
    if found is not None:
        return found
    with _lock:
        if fn not in _compiled:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    _compiled[fn] = torch.jit.script(fn)
            except Exception:  # noqa: BLE001 - no TorchScript here: the eager function gives the same numbers
                _compiled[fn] = fn
        return _compiled[fn]


def scripted_module(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` compiled by ``torch.jit.script``, or ``module`` itself where that fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(module)
    except Exception:  # noqa: BLE001 - no TorchScript here: the eager module gives the same numbers
        return module
