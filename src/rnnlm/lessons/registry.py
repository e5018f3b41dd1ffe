"""Every lesson by name: its model, data, recipe, what it teaches and the number the seed reports.

The seed documents (``shared/seeds/``): 000 lesson notes on Nietzsche (with outputs), 001 the
stateful models (with outputs), 002 human numbers (with outputs), 003 the Nietzsche notebook
explained (no outputs), 004 PyTorch RNN basics. Where two documents report a different number
for the same recipe, the seed's number is the range between them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping

from torch import nn

import rnnlm.lessons.models as m
from rnnlm.errors import SettingError, literal
from rnnlm.lessons.recipe import LessonRecipe
from rnnlm.train.schedules import Phase

SEED_DOCS = {
    "000": "lesson notes: Nietzsche, one character at a time",
    "001": "stateful recurrent models on Nietzsche",
    "002": "human numbers, one word at a time",
    "003": "the Nietzsche notebook, explained",
    "004": "PyTorch RNN basics",
}

SeedNumber = float | tuple[float, float] | str


@dataclass(frozen=True)
class Lesson:
    name: str
    seeds: str  # the seed documents that hold it, e.g. "000, 003"
    teaches: str
    metric: str  # "valid_loss", "train_loss", "accuracy", or what a demo reports
    seed: SeedNumber  # the seed's reported number (a range where two documents differ)
    kind: str = "train"  # "train", or a demo: "hihell", "shapes", "cells"
    data: str = ""
    bs: int = 0
    seq: int = 0  # window length or bptt
    model: type[nn.Module] | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    recipe: LessonRecipe | None = None
    scalable: bool = False  # LessonContext.scale applies (the long Nietzsche recipes)
    prime: str = "for thos"  # after training, sample the lesson way from this window
    sample_n: int = 0
    greedy: bool = True
    note: str = ""


def phases(*steps: tuple[float, float]) -> tuple[Phase, ...]:
    """Constant-rate phases, the notebooks' ``fit`` then ``set_lrs`` then ``fit`` again."""
    return tuple(Phase(epochs, lr) for epochs, lr in steps)


def one_cycle(epochs: int, lr: float, pct_start: float = 0.3) -> LessonRecipe:
    """fastai v1's ``fit_one_cycle`` with its default optimiser (AdamW, betas 0.9/0.99, wd 0.01)."""
    return LessonRecipe((Phase(epochs, lr, "onecycle", pct_start=pct_start),), optimizer="adamw", wd=1e-2)


LSTM_PHASES = (Phase(2, 1e-2), Phase(15, 1e-2, "sgdr", cycle_mult=2, save_cycles=True))

NIETZSCHE_WINDOWS = dict(bs=512, scalable=True, sample_n=40)
NIETZSCHE_STREAMS = dict(data="nietzsche-streams", bs=64, seq=8, scalable=True, sample_n=200, greedy=False)

LESSONS_LIST = [
    Lesson("Char3Model", "000, 003", "three characters predict the fourth: green, orange and blue "
           "arrows, the loop unrolled by hand", "train_loss", 1.84,
           data="nietzsche-triples", seq=3, model=m.Char3Model, prime=" th",
           recipe=LessonRecipe(phases((1, 1e-2), (1, 1e-3))), **NIETZSCHE_WINDOWS,
           note="the seed reports a train loss only: it validates on one window and "
                "trains on all the others, rnnlm holds out 20%"),
    Lesson("CharLoopModel", "000, 003", "the same with a for loop: an RNN over 8 characters "
           "(input added to the hidden state)", "valid_loss", 1.75,
           data="nietzsche-windows", seq=8, model=m.CharLoopModel,
           recipe=LessonRecipe(phases((1, 1e-2), (1, 1e-3))), **NIETZSCHE_WINDOWS),
    Lesson("CharLoopConcatModel", "000, 003", "concatenate input and hidden state instead of "
           "adding them", "valid_loss", 1.70,
           data="nietzsche-windows", seq=8, model=m.CharLoopConcatModel,
           recipe=LessonRecipe(phases((1, 1e-3), (1, 1e-4))), **NIETZSCHE_WINDOWS),
    Lesson("CharRnn", "000, 003", "nn.RNN writes the loop; keep the last output", "valid_loss", 1.50,
           data="nietzsche-windows", seq=8, model=m.CharRnn,
           recipe=LessonRecipe(phases((4, 1e-3), (2, 1e-4))), **NIETZSCHE_WINDOWS),
    Lesson("CharSeqRnn", "000, 003", "multi-output: non-overlapping windows, a prediction after "
           "every character (nll_loss_seq)", "valid_loss", 2.00,
           data="nietzsche-sequences", seq=8, model=m.CharSeqRnn,
           recipe=LessonRecipe(phases((4, 1e-3), (1, 1e-4))), **NIETZSCHE_WINDOWS),
    Lesson("CharSeqRnn-identity", "000, 003", "identity initialisation of the hidden-to-hidden "
           "weights allows a 10x higher rate", "valid_loss", 1.84,
           data="nietzsche-sequences", seq=8, model=m.CharSeqRnn, model_kwargs={"identity_init": True},
           recipe=LessonRecipe(phases((4, 1e-2), (4, 1e-3))), **NIETZSCHE_WINDOWS),
    Lesson("CharSeqStatefulRnn", "000, 001, 003", "keep the hidden state between batches of "
           "contiguous streams; detach it (bptt)", "valid_loss", (1.49, 1.54),
           model=m.CharSeqStatefulRnn, recipe=LessonRecipe(phases((4, 1e-3), (4, 1e-4))), **NIETZSCHE_STREAMS),
    Lesson("CharSeqStatefulRnn2", "000, 001, 003", "the stateful RNN as a loop over a "
           "hand-written RNNCell", "valid_loss", (1.54, 1.60),
           model=m.CharSeqStatefulRnn2, recipe=LessonRecipe(phases((4, 1e-3),)), **NIETZSCHE_STREAMS),
    Lesson("CharSeqStatefulGRU", "000, 001, 003", "a GRU: reset and update gates", "valid_loss",
           (1.37, 1.43),
           model=m.CharSeqStatefulGRU, recipe=LessonRecipe(phases((6, 1e-3), (3, 1e-4))), **NIETZSCHE_STREAMS),
    Lesson("CharSeqStatefulLSTM", "000, 001, 003", "2-layer LSTM, 512 hidden, dropout 0.5; "
           "2 epochs, then SGDR (cycle_mult 2) saving at each cycle end", "valid_loss", (1.32, 1.35),
           model=m.CharSeqStatefulLSTM, recipe=LessonRecipe(LSTM_PHASES, wd=1e-5), **NIETZSCHE_STREAMS),
    Lesson("CharSeqStatefulLSTM-long", "000, 001", "the LSTM recipe, then 63 more epochs of SGDR",
           "valid_loss", 1.29,
           model=m.CharSeqStatefulLSTM,
           recipe=LessonRecipe(LSTM_PHASES + (Phase(63, 1e-2, "sgdr", cycle_mult=2, save_cycles=True),), wd=1e-5),
           note="000 reaches 1.29 (and says 'get down to 1.25'); 001's long run ends at 1.37",
           **NIETZSCHE_STREAMS),
    Lesson("Model0", "002", "three words predict the fourth: one matrix per arrow colour, with "
           "batch norm", "accuracy", 0.35,
           data="human-numbers-last", bs=64, seq=3, model=m.Model0, recipe=one_cycle(6, 1e-4)),
    Lesson("Model1", "002", "Model0 refactored as a loop: an RNN", "accuracy", 0.46,
           data="human-numbers-last", bs=64, seq=3, model=m.Model1, recipe=one_cycle(6, 1e-4)),
    Lesson("Model2", "002", "a prediction after every word, state reset every batch", "accuracy", 0.43,
           data="human-numbers-streams", bs=64, seq=20, model=m.Model2,
           recipe=one_cycle(10, 1e-4, pct_start=0.1)),
    Lesson("Model3", "002", "keep the state between batches", "accuracy", 0.55,
           data="human-numbers-streams", bs=64, seq=20, model=m.Model3, recipe=one_cycle(20, 3e-3)),
    Lesson("Model4", "002", "nn.RNN does the loop (flat batch norm on bs x seq x hidden)", "accuracy", 0.58,
           data="human-numbers-streams", bs=64, seq=20, model=m.Model4, recipe=one_cycle(20, 3e-3)),
    Lesson("Model5", "002", "a 2-layer GRU", "accuracy", 0.83,
           data="human-numbers-streams", bs=64, seq=20, model=m.Model5, recipe=one_cycle(10, 1e-2)),
    Lesson("hihell", "004", "one-hot letters into nn.RNN; prints its guess as it learns",
           "prediction", "ihello", kind="hihell", data="hihell", recipe=LessonRecipe(phases((100, 0.1),))),
    Lesson("rnn-shapes", "004, 000", "nn.RNN input, output and hidden shapes: layers, "
           "bidirectional, batch_first", "shapes as the seed", "4/4", kind="shapes"),
    Lesson("cells", "000, 001, 003", "RNNCell, GRUCell, LSTMCell written out, checked against "
           "torch.nn with the same weights", "max |diff|", "same formulas", kind="cells"),
]

LESSONS = {lesson.name: lesson for lesson in LESSONS_LIST}


def find_lesson(name: str) -> Lesson:
    """The lesson called ``name`` (any letter case); a one-line error with suggestions otherwise."""
    by_lower = {key.lower(): lesson for key, lesson in LESSONS.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name, list(LESSONS), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else "; see rnnlm lesson {list}"
    raise SettingError("names", f"no lesson called {literal(repr(name))}{hint}")


def select_lessons(names: list[str], run_all: bool = False) -> list[Lesson]:
    """The lessons named (each once, in order), or all of them."""
    if run_all and names:
        raise SettingError("run_all", "name lessons or give {run_all}, not both")
    if run_all:
        return list(LESSONS_LIST)
    if not names:
        raise SettingError("names", "name the lessons to run, or give {run_all} (rnnlm lesson {list} shows them)")
    chosen = [find_lesson(name) for name in names]
    return list({lesson.name: lesson for lesson in chosen}.values())
