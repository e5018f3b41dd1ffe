"""The memory training takes, estimated before anything is asked of the machine."""

from __future__ import annotations

import torch

from rnnlm.config import RunConfig
from rnnlm.device import check_memory
from rnnlm.errors import RnnlmError, SettingError
from rnnlm.models.recurrent import GATES, parameter_count


def training_memory(config: RunConfig, vocab_size: int) -> int:
    """Bytes training needs: the weights, their gradients and Adam's two moments (4 floats a
    parameter), and the activations of one batch (logits, their softmax and gradient; each
    layer's gates, outputs and gradients)."""
    m, t = config.model, config.train
    per_token = 3 * vocab_size + m.emb + 2 * m.layers * m.hidden * (GATES[m.cell] + 2)
    return 4 * (4 * parameter_count(vocab_size, m) + t.bs * t.bptt * per_token)


def check_training_memory(config: RunConfig, vocab_size: int, device: torch.device) -> None:
    """Refuse a model and batch that could never fit."""
    t = config.train
    try:
        check_memory(training_memory(config, vocab_size), device,
                     f"training {parameter_count(vocab_size, config.model):,} parameters on batches of {{bs}} {t.bs} x "
                     f"{{bptt}} {t.bptt}", "use a smaller {hidden}, {emb}, {layers}, {bs} or {bptt}")
    except RnnlmError as e:  # its message names the settings as placeholders
        raise SettingError("hidden", str(e)) from None
