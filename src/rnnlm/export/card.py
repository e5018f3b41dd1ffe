"""The model's card in an export: what the playground shows about a served model (data, level,
sizes, the best validation loss and bits per character), without the device it was loaded on."""

from __future__ import annotations

import os

from rnnlm.generation.session import GenerationSession
from rnnlm.runfolder import CONFIG, METRICS, Run
from rnnlm.serve.models import MetricsFile, ServedModel


def model_card(run: Run) -> dict:
    served = ServedModel(run.name, GenerationSession(run), int(os.stat(run.folder / CONFIG).st_mtime),
                         MetricsFile(run.folder / METRICS))
    card = served.card()
    card.pop("device", None)
    return card
