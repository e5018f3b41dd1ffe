"""Choosing where tensors live. torch is imported by the functions that use it, so that reading
a corpus (``machine_memory``, ``size_text``) does not load it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rnnlm.errors import RnnlmError, SettingError, invalid

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present, else the CPU; asking for CUDA without one is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingError("device", "{device} cuda: no CUDA device is available here (use {device} cpu)")
    if name not in ("cpu", "cuda"):
        raise invalid("device", f"must be auto, cpu or cuda (got {name!r})")
    return torch.device(name)


def resolve_precision(name: str = "auto", device: str = "auto") -> str:
    """The precision of training steps on ``device``: ``auto`` is bf16 on a CPU with bfloat16
    instructions (benchmarks/precision.py: it reaches a lower loss in the same minutes there) and
    fp32 elsewhere; bf16 asked for where it would be emulated, slower than fp32, is an error."""
    if name == "fp32":
        return name
    if resolve_device(device).type == "cuda":
        import torch

        if name == "bf16" and not torch.cuda.is_bf16_supported():
            raise SettingError("precision", "{precision} bf16: this GPU has no bfloat16 support; use {precision} fp32")
        return "fp32" if name == "auto" else name
    if name == "bf16" and not cpu_has_bf16():
        raise SettingError("precision", "{precision} bf16: this CPU has no bfloat16 instructions (AVX-512 BF16 "
                                        "or AMX); use {precision} fp32 or auto")
    return "bf16" if cpu_has_bf16() else "fp32"


def cpu_has_bf16() -> bool:
    """Whether the CPU computes in bfloat16 natively (Linux's flags: AVX-512 BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def memory_bytes(device: torch.device) -> int:
    """All the memory of ``device``: the GPU's own, or the machine's physical memory."""
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_properties(device).total_memory
    return machine_memory()


def machine_memory() -> int:
    """The machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def size_text(nbytes: float) -> str:
    """``1.5 GB``: decimal units, as disks and most tools count."""
    if nbytes >= 10**18:
        return f"{float(min(nbytes, 10**300)):.1e} bytes"
    units = ("bytes", "KB", "MB", "GB", "TB", "PB")
    power = 0
    while nbytes >= 1000 and power < len(units) - 1:
        nbytes, power = nbytes / 1000, power + 1
    return f"{nbytes:,.0f} bytes" if power == 0 else f"{nbytes:,.1f} {units[power]}"


def check_memory(nbytes: int, device: torch.device, what: str, advice: str, field: str | None = None) -> None:
    """Refuse work that needs more than all the memory of ``device``: asking for it would fail, or
    get the process killed by the system, after a long wait."""
    if nbytes > memory_bytes(device):
        raise memory_error(nbytes, device, what, advice, field)


def memory_error(nbytes: int, device: torch.device, what: str, advice: str, field: str | None = None) -> RnnlmError:
    """``what`` needs ``nbytes``, more than ``device`` has; ``advice`` says what to do. With ``field``
    the error is that setting's (a SettingError: ``what`` and ``advice`` may name settings as
    ``{field}``)."""
    message = (f"{what} needs about {size_text(nbytes)} of memory, more than the {size_text(memory_bytes(device))} "
               f"of this {'GPU' if device.type == 'cuda' else 'machine'}; {advice}")
    return RnnlmError(message) if field is None else SettingError(field, message)


def set_threads(threads: int | None) -> None:
    """Threads for torch's CPU kernels; None keeps torch's default (one per physical core)."""
    if threads is None:
        return
    if threads < 1:
        raise invalid("threads", f"must be >= 1 (got {threads})")
    import torch

    torch.set_num_threads(threads)
