"""The run folder: everything a trained model needs, in formats that are safe to load.

    runs/NAME/config.json              settings to rebuild data, vocab and model (JSON)
    runs/NAME/vocab.json               the vocab (JSON)
    runs/NAME/tokenizer.json           at BPE level: the tokenizer (Hugging Face tokenizers' JSON)
    runs/NAME/documents.safetensors    a list's documents: hashes of its training and validation items
    runs/NAME/model.safetensors        weights with the best validation loss
    runs/NAME/last.safetensors         weights after the last epoch
    runs/NAME/metrics.jsonl            one JSON object per epoch
    runs/NAME/loss.png                 loss curve, redrawn each epoch (when matplotlib is installed)
    runs/NAME/train_state.safetensors  the resumable training state (rnnlm.train.checkpoint)
    runs/NAME/cycle_N.safetensors      weights at the end of each SGDR cycle (--schedule sgdr)

Nothing here unpickles: weights go through safetensors, the rest through JSON. Every file is
written atomically. Loading checks a folder from a stranger before it trusts it: config.json
vocab.json (and tokenizer.json) must agree with each other and with the tensors' names, shapes
and types (read from the safetensors header, before any memory is asked for), and the weights
must be finite.

One process at a time trains in a run folder: it holds ``.lock`` (``flock``), which the
kernel releases when the process ends, however it ends, so a killed run never leaves a stale lock.
A run that others read from (the base of a fine-tuned run) is read under a shared lock taken on
a read-only descriptor: nothing in it is opened for writing, and a folder without a lock is not
given one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors

from rnnlm import __version__
from rnnlm.atomic import write_bytes, write_json
from rnnlm.card import MetricsFile, card_html, model_card
from rnnlm.config import RunConfig
from rnnlm.data.items import ItemRecord
from rnnlm.data.tokenizers import Tokenizer, load_tokenizer, save_tokenizer
from rnnlm.data.vocab import SPECIALS, Vocab
from rnnlm.device import check_memory, resolve_device
from rnnlm.errors import RnnlmError, SettingError, in_context, invalid, literal, shown
from rnnlm.models import RecurrentLM
from rnnlm.models.recurrent import parameter_count
from rnnlm.reading import read_json, regular_file_size

CONFIG, VOCAB, BEST, LAST, METRICS = (
    "config.json", "vocab.json", "model.safetensors", "last.safetensors", "metrics.jsonl",
)
PLOT, STATE, LOCK = "loss.png", "train_state.safetensors", ".lock"
RUN_FORMAT = "rnnlm-run"
RUN_VERSION = 1
CONFIG_LIMIT = 1 << 20  # bytes of config.json
MAX_VOCAB = 1 << 32  # the ids of a larger vocab would not fit the id types
FLOATS = {"F16", "BF16", "F32", "F64"}  # safetensors dtypes weights may have
TOKEN_BYTES = 1 << 16  # generous room for one token in vocab.json


def make_folder(out: str | os.PathLike) -> Path:
    """``out`` as a folder, created if need be; a file is refused."""
    path = Path(out)
    try:
        if path.exists() and not path.is_dir():
            raise invalid("out", f"{path}: is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise invalid("out", f"{shown(str(path), 200)}: cannot create folder ({e.strerror})") from None
    return path


def check_unused(path: Path) -> None:
    """Refuse a folder that holds anything but an unheld lock."""
    if path.is_dir() and any(p.name != LOCK for p in path.iterdir()):
        what = "a run" if (path / CONFIG).exists() else "files"
        raise SettingError("out", f"{{out}} {literal(path)}: folder already holds {what}; choose another {{out}}")


@contextmanager
def new_run_folder(out: str | os.PathLike) -> Iterator[Path]:
    """An empty folder for a new run, created if need be, locked while the block runs (it is
    checked to be empty under the lock: two trainings may have started at once)."""
    folder = make_folder(out)
    had_lock = os.path.lexists(folder / LOCK)
    with locked_run_folder(folder):
        try:
            check_unused(folder)
        except RnnlmError:
            if not had_lock:  # leave someone else's folder as it was
                (folder / LOCK).unlink(missing_ok=True)
            raise
        yield folder


def discard_run_folder(folder: Path, created: bool) -> None:
    """Remove what a failed new run wrote: the folder itself when the run created it, else its
    contents (it was empty before)."""
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@contextmanager
def locked_run_folder(folder: Path) -> Iterator[None]:
    """Hold the lock of a run folder for the block; refuse when another process holds it."""
    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise RnnlmError(f"{path}: cannot open the lock of the run folder ({e.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RnnlmError(f"{path}: the lock of the run folder is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except (BlockingIOError, FileNotFoundError):
            same = False
        if not same:  # held, or removed by its holder between our open and our lock
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise SettingError("out", f"{literal(folder)}: another rnnlm process{pid} is training in this folder; "
                                      "wait for it to finish, or choose another {out}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)


@contextmanager
def reading_run_folder(folder: Path) -> Iterator[None]:
    """Read a run folder for the block, never writing in it; refuse one that a process is
    training in now (it holds the lock; its weights are still changing)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # no lock: nobody ever trained here, or the folder was copied without it
        yield
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                pid = f" (pid {holder})" if holder.isdigit() else ""
                raise RnnlmError(f"{folder}: another rnnlm process{pid} is training in this run folder now; "
                                 "wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def write_run_config(folder: Path, config: RunConfig, vocab: Vocab, name: str, tokenizer: Tokenizer,
                     items: ItemRecord | None = None) -> None:
    """config.json, vocab.json, the tokenizer (BPE) and, for a list's documents, the record of
    which items are training and validation ones (``rnnlm.data.items``)."""
    vocab.save(folder / VOCAB)
    save_tokenizer(tokenizer, folder)
    if items is not None:
        items.save(folder)
    write_json(folder / CONFIG, {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "rnnlm": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "name": name,
        "vocab_size": len(vocab),
        **config.to_dict(),
    })


def save_weights(path: Path, model: torch.nn.Module) -> None:
    """Safetensors bytes written atomically; tied weights are stored under both names."""
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    write_bytes(path, save_safetensors(tensors, metadata={"format": RUN_FORMAT}))


def weights_shapes(path: Path, expected: dict[str, torch.Size]) -> None:
    """Check the header of a safetensors file against the tensors a model expects: names, shapes
    and a floating type; nothing is loaded yet."""
    regular_file_size(path, missing="no weights file (did training finish an epoch?)")
    try:
        with safe_open(path, framework="pt") as f:
            found = {name: f.get_slice(name) for name in f.keys()}
            shapes = {name: (tuple(s.get_shape()), s.get_dtype()) for name, s in found.items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise RnnlmError(f"{path}: damaged or not a safetensors file ({str(e)[:200]})") from None
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    if missing or extra:
        raise RnnlmError(f"{path}: weights do not match config.json (missing {shown(missing)}, "
                         f"unexpected {shown(extra)})")
    for name, (shape, dtype) in shapes.items():
        if shape != tuple(expected[name]):
            raise RnnlmError(f"{path}: tensor {name} has shape {shape}, config.json implies {tuple(expected[name])}")
        if dtype not in FLOATS:
            raise RnnlmError(f"{path}: tensor {name} holds {dtype} values, not floating point numbers")


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Load safetensors weights into ``model``, refusing missing, extra, misshapen or non-finite tensors."""
    weights_shapes(path, {k: v.shape for k, v in model.state_dict().items()})
    try:
        with safe_open(path, framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise RnnlmError(f"{path}: damaged or not a safetensors file ({str(e)[:200]})") from None
    bad = next((name for name, t in tensors.items() if not torch.isfinite(t).all()), None)
    if bad:
        raise RnnlmError(f"{path}: tensor {bad} holds values that are not finite (NaN or infinity)")
    model.load_state_dict(tensors)


@dataclass
class Run:
    """A run folder loaded: its settings, vocab, tokenizer and model, on ``device``."""

    folder: Path
    name: str
    config: RunConfig
    vocab: Vocab
    tokenizer: Tokenizer
    model: RecurrentLM
    device: torch.device

    def card(self) -> dict:
        """The run's card (``rnnlm.card``): data, level, sizes, its best validation."""
        return model_card(self, MetricsFile(self.folder / METRICS).read())

    def _repr_html_(self) -> str:
        """The card and the loss curve, as a notebook shows a run."""
        return card_html(self.card(), self.folder / PLOT)


def read_run_config(folder: Path) -> dict:
    """The JSON of ``config.json``, checked to be a run config of the format this rnnlm writes."""
    path = folder / CONFIG
    if not folder.is_dir():
        what = "is a file, not a run folder" if folder.exists() else "no such run folder"
        raise RnnlmError(f"{folder}: {what}")
    if not os.path.lexists(path):
        raise RnnlmError(f"{folder}: not a run folder (no {CONFIG})")
    obj = read_json(path, CONFIG_LIMIT, "config")
    if not isinstance(obj, dict) or obj.get("format") != RUN_FORMAT:
        raise RnnlmError(f"{path}: not an rnnlm run config")
    if obj.get("version") != RUN_VERSION:
        raise RnnlmError(f"{path}: unknown run format version {shown(obj.get('version'))}")
    size = obj.get("vocab_size")
    if not isinstance(size, int) or isinstance(size, bool) or not len(SPECIALS) <= size <= MAX_VOCAB:
        raise RnnlmError(f"{path}: vocab_size must be a whole number in {len(SPECIALS)}..{MAX_VOCAB} "
                         f"(got {shown(size)})")
    return obj


def read_config(folder: Path) -> tuple[dict, RunConfig]:
    """``config.json`` as JSON and as validated settings."""
    obj = read_run_config(folder)
    try:
        return obj, RunConfig.from_dict(obj)
    except RnnlmError as e:
        raise in_context(e, str(folder / CONFIG)) from None


def load_run(
    folder: str | os.PathLike, weights: str = BEST, device: str = "auto"
) -> Run:
    """Rebuild the model of a run folder and load its weights (``model.safetensors`` by default).

    Everything is checked before it is read: the model's size against the machine (before it is
    built), the weights' header against config.json, vocab.json's length against both."""
    folder = Path(folder)
    obj, config = read_config(folder)
    size = obj["vocab_size"]
    target = resolve_device(device)
    check_memory(4 * parameter_count(size, config.model), target, f"the model of {folder}",
                 "it cannot be loaded here")
    model = RecurrentLM(size, config.model)  # not on the meta device: normal_ there imports torch._dynamo (seconds)
    weights_shapes(folder / weights, {k: v.shape for k, v in model.state_dict().items()})
    vocab = load_vocab(folder, size, config)
    tokenizer = load_run_tokenizer(folder, config, vocab)
    load_weights(folder / weights, model)
    model.to(target).eval()
    return Run(folder, str(obj.get("name", folder.name)), config, vocab, tokenizer, model, target)


def load_run_tokenizer(folder: Path, config: RunConfig, vocab: Vocab) -> Tokenizer:
    """The run's tokenizer; at BPE level its tokenizer.json, checked against ``vocab``."""
    return load_tokenizer(folder, config.data.level or "char", config.data.lower, vocab, config.data.documents)


def load_vocab(folder: Path, size: int, config: RunConfig) -> Vocab:
    """``vocab.json`` of a run folder, which must hold the ``size`` tokens config.json says (a
    file far larger than that many tokens can take is refused before it is read), one character
    each at character level."""
    path = folder / VOCAB
    if os.path.lexists(path) and regular_file_size(path) > (size + 1) * TOKEN_BYTES:
        raise RnnlmError(f"{path}: {regular_file_size(path):,} bytes, far more than {size} tokens (config.json) take")
    vocab = Vocab.load(path)
    if len(vocab) != size:
        raise RnnlmError(f"{folder}: config.json says {size} tokens, vocab.json has {len(vocab)}")
    if (config.data.level or "char") == "char":
        long = next((t for t in vocab.itos[len(SPECIALS):] if len(t) != 1), None)
        if long is not None:
            raise RnnlmError(f"{folder / VOCAB}: token {shown(long)} is not one character, in a character-level run")
    return vocab
