"""TensorBoard event files of a run (``tensorboard=DIR``): at each validation the train and valid
loss, bits per character, accuracy, the rate and the tokens per second, and a text sample
written by the model as it stands; the running train loss where the loop syncs. Written with
``torch.utils.tensorboard``, which needs the ``tensorboard`` package (the ``tensorboard`` extra):
``tensorboard --logdir DIR`` shows them."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rnnlm.errors import invalid
from rnnlm.generation.sampling import Sampling
from rnnlm.generation.session import GenerationSession
from rnnlm.runfolder import Run
from rnnlm.train.callbacks import Callback

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from rnnlm.train.learner import Learner

SAMPLE_TOKENS = {"char": 200, "bpe": 60, "word": 40}  # tokens of the sample written at each validation


def run_sampler(run: Run, seed: int) -> Callable[["Learner"], str]:
    """A sample of the text the model being trained writes now (a fresh generation session over
    its weights as they stand, the same seed each time); ``run``: the run, whose model is the
    learner's."""

    def sample(learner: "Learner") -> str:
        session = GenerationSession(replace(run, model=learner.model, device=learner.device))
        return session.sample_texts("", SAMPLE_TOKENS[run.tokenizer.level], seed=seed,
                                    sampling=Sampling(temperature=0.8))[0]

    return sample


def check_tensorboard(folder: str | os.PathLike) -> Path:
    """The folder event files go to: one that is, or can be, a folder; and the package that
    writes them, installed."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise invalid("tensorboard", f"{path}: is a file, not a folder")
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise invalid("tensorboard", "needs the tensorboard package: pip install 'rnnlm[tensorboard]'") from None
    return path


class TensorBoardLog(Callback):
    """Scalars at each validation (tagged ``loss/train``, ``loss/valid``, ``bits_per_char``,
    ``accuracy``, ``lr``, ``tokens_per_s``; x: optimiser steps), the running train loss
    (``loss/train_running``) at each sync, and ``sample(learner)`` as text."""

    def __init__(self, folder: str | os.PathLike, sample: Callable[["Learner"], str] | None = None):
        self.folder, self.sample = Path(folder), sample
        self.writer: SummaryWriter | None = None
        self.tokens_before = 0  # tokens seen at the previous validation

    def on_train_begin(self, learner: "Learner") -> None:
        from torch.utils.tensorboard import SummaryWriter

        if self.writer is None:
            self.writer = SummaryWriter(log_dir=str(self.folder))
        self.tokens_before = learner.history[-1]["tokens"] if learner.history else 0

    def on_batch_end(self, learner: "Learner", loss: float | None) -> None:
        if loss is not None:
            self.writer.add_scalar("loss/train_running", loss, learner.step)

    def on_epoch_end(self, learner: "Learner", row: dict[str, Any]) -> None:
        step, tokens = learner.step, row["tokens"]
        scalars = {"loss/train": row["train_loss"], "loss/valid": row["valid_loss"], "bits_per_char": row["bpc"],
                   "accuracy": row["accuracy"], "lr": row["lr"]}
        if row["time"] > 0:
            scalars["tokens_per_s"] = (tokens - self.tokens_before) / row["time"]
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.tokens_before = tokens
        if self.sample is not None:
            self.writer.add_text("sample", self.sample(learner), step)
        self.writer.flush()

    def on_train_end(self, learner: "Learner") -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
