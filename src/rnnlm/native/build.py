"""A C kernel of this package, compiled once per machine by the system's C compiler and loaded
with ctypes.

The compiled library is kept in the user's cache (``$RNNLM_CACHE_DIR``, else
``$XDG_CACHE_HOME/rnnlm``, else ``~/.cache/rnnlm``), under ``native/``, named by a hash of the
source, the compiler, its flags and this CPU: a changed source or another machine sharing the
home folder builds its own, and a half-written library is never loaded (each is written beside
its place and renamed into it). Compiling takes well under a second.

Where there is no compiler, or the build or the load fails, ``library`` answers None and says why
in ``unavailable``; callers keep their torch path, with the same results to float rounding.
``RNNLM_NATIVE=0`` turns the kernels off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path

FLAGS = ["-O3", "-fno-trapping-math", "-ffp-contract=fast", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-fPIC", "-shared",
         "-pthread"]
NATIVE_FLAGS = ["-march=native"]  # tried first; a compiler that refuses it builds without it
BUILD_SECONDS = 120

unavailable: dict[str, str] = {}  # kernel name -> why it could not be had
_loaded: dict[str, ctypes.CDLL | None] = {}
_lock = threading.Lock()


def library(name: str) -> ctypes.CDLL | None:
    """The kernel ``rnnlm/native/<name>.c``, built at first use; None where it cannot be had."""
    if name in _loaded:
        return _loaded[name]
    with _lock:
        if name not in _loaded:
            try:
                _loaded[name] = ctypes.CDLL(str(built(name)))
                unavailable.pop(name, None)
            except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                _loaded[name] = None
                unavailable[name] = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return _loaded[name]


def forget() -> None:
    """Look again at the next ``library`` call (after the environment changed: tests)."""
    with _lock:
        _loaded.clear()
        unavailable.clear()


def cache_dir() -> Path:
    if os.environ.get("RNNLM_CACHE_DIR"):
        return Path(os.environ["RNNLM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnlm"


def compiler() -> list[str]:
    """``$CC`` (a command, with any options it carries), else cc, gcc or clang from the PATH."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not found:
        raise RuntimeError("no C compiler (cc, gcc or clang) on the PATH")
    return [found]


def cpu_identity() -> str:
    """What a library built with -march=native depends on: the machine and its instruction sets."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    features = next((line for line in lines if line.startswith(("flags", "Features"))), "")
    return f"{platform.machine()} {platform.processor()} {features}"


def built(name: str) -> Path:
    """The compiled library of ``name``, from the cache or freshly built into it."""
    if os.environ.get("RNNLM_NATIVE", "1") == "0":
        raise RuntimeError("turned off by RNNLM_NATIVE=0")
    source = resources.files("rnnlm.native").joinpath(f"{name}.c").read_bytes()
    cc = compiler()
    command = " ".join([os.path.realpath(shutil.which(cc[0]) or cc[0]), *cc[1:], *FLAGS, *NATIVE_FLAGS])
    key = hashlib.sha256(b"\0".join([source, command.encode(), cpu_identity().encode()])).hexdigest()[:16]
    folder = cache_dir() / "native"
    target = folder / f"{name}-{key}{'.dylib' if platform.system() == 'Darwin' else '.so'}"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        c_file, out = Path(scratch) / f"{name}.c", Path(scratch) / target.name
        c_file.write_bytes(source)
        for extra in (NATIVE_FLAGS, []):
            done = subprocess.run([*cc, *FLAGS, *extra, "-o", str(out), str(c_file), "-lm"], capture_output=True,
                                  text=True, timeout=BUILD_SECONDS)
            if done.returncode == 0:
                break
        else:
            raise RuntimeError(f"{cc[0]} could not build {name}.c: {(done.stderr or done.stdout).strip()}")
        os.replace(out, target)
    return target
