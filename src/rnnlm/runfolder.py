"""The run folder: everything a trained model needs, in formats that are safe to load.

    runs/NAME/config.json              settings to rebuild data, vocab and model (JSON)
    runs/NAME/vocab.json               the vocab (JSON)
    runs/NAME/model.safetensors        weights with the best validation loss
    runs/NAME/last.safetensors         weights after the last epoch
    runs/NAME/metrics.jsonl            one JSON object per epoch
    runs/NAME/loss.png                 loss curve, redrawn each epoch (when matplotlib is installed)
    runs/NAME/train_state.safetensors  the resumable training state (rnnlm.train.checkpoint)
    runs/NAME/cycle_N.safetensors      weights at the end of each SGDR cycle (--schedule sgdr)

Nothing here unpickles: weights go through safetensors, the rest through JSON. Every file is
written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from rnnlm import __version__
from rnnlm.atomic import write_bytes, write_json
from rnnlm.config import RunConfig
from rnnlm.data.tokenizers import Tokenizer, make_tokenizer
from rnnlm.data.vocab import Vocab
from rnnlm.device import resolve_device
from rnnlm.errors import RnnlmError
from rnnlm.models import RecurrentLM

CONFIG, VOCAB, BEST, LAST, METRICS = (
    "config.json", "vocab.json", "model.safetensors", "last.safetensors", "metrics.jsonl",
)
PLOT, STATE = "loss.png", "train_state.safetensors"
RUN_FORMAT = "rnnlm-run"
RUN_VERSION = 1


def prepare_run_folder(out: str | os.PathLike) -> Path:
    """Create ``out`` for a new run; refuse a file, or a folder that already holds anything."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RnnlmError(f"--out {path}: is a file, not a folder")
    if path.is_dir() and any(path.iterdir()):
        what = "a run" if (path / CONFIG).exists() else "files"
        raise RnnlmError(f"--out {path}: folder already holds {what}; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RnnlmError(f"--out {path}: cannot create folder ({e.strerror})") from None
    return path


def write_run_config(folder: Path, config: RunConfig, vocab: Vocab, name: str) -> None:
    vocab.save(folder / VOCAB)
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


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Load safetensors weights into ``model``, refusing missing, extra or misshapen tensors."""
    try:
        tensors = load_safetensors(path.read_bytes())
    except FileNotFoundError:
        raise RnnlmError(f"{path}: no weights file (did training finish an epoch?)") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise RnnlmError(f"{path}: damaged or not a safetensors file ({e})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise RnnlmError(f"{path}: weights do not match config.json (missing {missing}, unexpected {extra})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise RnnlmError(
                f"{path}: tensor {name} has shape {tuple(tensor.shape)}, config.json implies "
                f"{tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors)


@dataclass
class Run:
    folder: Path
    name: str
    config: RunConfig
    vocab: Vocab
    tokenizer: Tokenizer
    model: RecurrentLM
    device: torch.device


def read_run_config(folder: Path) -> dict:
    path = folder / CONFIG
    if not folder.is_dir():
        raise RnnlmError(f"{folder}: no such run folder")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RnnlmError(f"{folder}: not a run folder (no {CONFIG})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RnnlmError(f"{path}: damaged config ({e})") from None
    if not isinstance(obj, dict) or obj.get("format") != RUN_FORMAT:
        raise RnnlmError(f"{path}: not an rnnlm run config")
    if obj.get("version") != RUN_VERSION:
        raise RnnlmError(f"{path}: unknown run format version {obj.get('version')!r}")
    return obj


def load_run(
    folder: str | os.PathLike, weights: str = BEST, device: str = "auto"
) -> Run:
    """Rebuild the model of a run folder and load its weights (``model.safetensors`` by default)."""
    folder = Path(folder)
    obj = read_run_config(folder)
    config = RunConfig.from_dict(obj)
    vocab = Vocab.load(folder / VOCAB)
    if obj.get("vocab_size") != len(vocab):
        raise RnnlmError(f"{folder}: config.json says {obj.get('vocab_size')} tokens, vocab.json has {len(vocab)}")
    level = config.data.level or "char"
    model = RecurrentLM(len(vocab), config.model)
    load_weights(folder / weights, model)
    target = resolve_device(device)
    model.to(target).eval()
    return Run(folder, str(obj.get("name", folder.name)), config, vocab,
               make_tokenizer(level, config.data.lower), model, target)
