"""What ``--budget`` trains when the user names no model: a size, its epochs and a dropout chosen
from the size of the corpus and how many epochs of it the budget buys on this machine.

- **size**: of a ladder of models, the largest that still trains ``MIN_EPOCHS`` epochs of the
  corpus in the time left, each model's speed measured by a probe (starting from the level's
  reference and going up while the next one fits); where the reference does not, the smallest
  (less than a few epochs of a larger model loses to more text through a smaller one; but on
  4.4 million characters of manual pages 2 x 512 at 2.8 epochs read 0.4533 nats/char where 1 x
  512 at 5.0 read 0.7068, so the bound is below 3 epochs), and in ``MIN_STEPS`` optimiser steps
  or more (in 3 minutes of one core, on the five texts of eight where the 2 x 768 trained 2.5
  epochs or more, 2.6 to 7.1 in 690 to 730 steps, it lost to the 2 x 512's 1,350 to 1,600 by
  0.023 to 0.124 nats/char; where it won, in 10 minutes of two cores, it had trained 2,200
  steps or more). A model of more than ``MAX_PARAMS_PER_TOKEN`` parameters a training token
  is not on the ladder: on 28,000 characters of a licence, 2 x 768 (260 a character)
  over-fitted within 25 epochs and read 1.9985 nats/char at best, where 2 x 512 (120) read
  1.9553; on 181,000 characters, 2 x 768 (41) read 1.2905 and 2 x 512 1.3012;
- **epochs**: at most ``MAX_EPOCHS``; where the budget buys more, the run ends early. Past them
  a small corpus over-fits whatever the dropout: on 181,000 characters of Spanish manual pages,
  2 x 768 read 1.2905 nats/char after 10.8 epochs, 1.2997 after 14.5 and 1.3169 after 23.8 (each
  with its dropouts below); on 196,000 characters of quips, 1.7717 after 11.2 against 1.7841
  after 21.5. So that those epochs are enough steps, a corpus of fewer than ``RECIPE_BATCHES``
  batches an epoch is read in smaller batches (on the licence, 11 epochs at bs 8 read 1.9735,
  at bs 13 2.0263, at bs 32 2.1330). Where the ladder's largest model fits the corpus and
  trains ``SMALL_CORPUS_EPOCHS`` or more, its bound would leave about half the budget unused or
  more, and the smallest model trains the whole budget instead, with the dropout of its many
  epochs: in 10 minutes of two cores, where the 2 x 768 ended early after 4 to 6 minutes
  (probed at 22 to 40 epochs), the 1 x 512 with dropout and weight dropout 0.5 for 106 to 182
  epochs read better on seven texts of 180,000 to 264,000 characters, by 0.003 to 0.021;
  on German jokes (361,000, probed at 23.0) it lost by 0.009. Given only the half of the
  budget the 2 x 768 leaves, as a second candidate, it lost on two word lists (1.4576 against
  1.4551, 1.4925 against 1.4844). On 30,000 characters (where the 2 x 768 is too large) it
  trained 378 epochs at bs 9 and fell apart mid-run (train loss from 1.04 back up to 2.08):
  1.5301 at best, against the 2 x 512's 1.4727 in its 11 epochs; on 92,590 characters of
  quips (bs 30) it read 1.7528 after 338 epochs against the 2 x 768's 1.7443;
- **dropout**: from the epochs the chosen model will train: more passes over the same text,
  more dropout, and from 6 epochs weight dropout too (``DROPOUTS``): on Nietzsche, 2 x 768 at
  bptt 32 for 9 epochs over-fitted with dropout 0.4 alone and read 0.020 nats/char better with
  dropout 0.3 and weight dropout 0.3 (a model the user sized may train more epochs: on the quips,
  23 epochs read 0.010 better with 0.5 and 0.5 than with 0.4 and 0.3). A model with fewer
  parameters than the corpus has training tokens takes the dropout of fewer epochs, by the
  square root of its parameters a token: on 7 million characters of Perl's documentation, 1 x
  512 (0.26 parameters a character) for about 3.4 epochs read 1.6250 nats/char with no dropout,
  1.5702 with 0.1 (the dropout of 3.4 x 0.51 = 1.7 epochs) and 1.5852 with the 0.3 of its
  epochs. Weight dropout costs time, so where the epochs at the probe's speed call for it, the
  model is probed again with it, and the dropout follows the epochs it trains then (where those
  are too few to call for weight dropout, it is left off).

benchmarks/README.md, "The recipe rules", has the runs behind them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Callable

from rnnlm.config import ModelConfig, RunConfig, TrainConfig

RECIPE_FIELDS = ("cell", "layers", "hidden", "emb", "dropout", "weight_dropout", "bs", "bptt", "lr", "wd")
MIN_BATCHES = 8  # batches an epoch, at least, of a batch size the user did not give (a fine-tuned run's too)
RECIPE_BATCHES = 96  # those of the recipe's batch size: about 1,000 steps in MAX_EPOCHS


@dataclass(frozen=True)
class Recipe:
    cell: str
    layers: int
    hidden: int
    emb: int
    dropout: float
    bs: int
    bptt: int
    lr: float
    wd: float = 0.0
    weight_dropout: float = 0.0

    def describe(self) -> str:
        return (f"{self.cell} {self.layers}x{self.hidden} emb {self.emb} dropout {self.dropout:g}"
                + (f" weight dropout {self.weight_dropout:g}" if self.weight_dropout else "")
                + f", bs {self.bs} bptt {self.bptt}, lr {self.lr:g}" + (f" wd {self.wd:g}" if self.wd else ""))


REFERENCE = Recipe("lstm", 2, 512, 64, 0.2, 64, 32, 3e-3)  # the probe that measures the machine
WORD_REFERENCE = Recipe("lstm", 2, 512, 256, 0.3, 64, 32, 3e-3)
REFERENCES = {"char": REFERENCE, "word": WORD_REFERENCE, "bpe": REFERENCE}  # by level
INF = math.inf

# the models by level, from the fastest to the largest; words have one (no sweep of their own)
LADDERS = {
    "char": (replace(REFERENCE, layers=1), REFERENCE, replace(REFERENCE, hidden=768)),
    "bpe": (replace(REFERENCE, layers=1), REFERENCE, replace(REFERENCE, hidden=768)),
    "word": (WORD_REFERENCE,),
}
MIN_EPOCHS = 2.5  # of the corpus a model of the ladder must train to be chosen over a smaller one
MIN_STEPS = 1000  # optimiser steps a model of the ladder must train as well to be chosen over a smaller one
MAX_EPOCHS = 11.0  # of the corpus a model the rules chose trains at most (but the smallest for a small corpus)
SMALL_CORPUS_EPOCHS = 25.0  # of the ladder's largest model, if it fits, from which the smallest trains instead
MAX_PARAMS_PER_TOKEN = 160  # parameters a training token, at most, of a model of the ladder (its smallest aside)
# (epochs below, dropout, weight dropout): those of a model that trains fewer epochs than the bound
DROPOUTS = ((1.0, 0.0, 0.0), (2.0, 0.1, 0.0), (3.0, 0.2, 0.0), (6.0, 0.3, 0.0), (12.0, 0.3, 0.3), (20.0, 0.4, 0.3),
            (INF, 0.5, 0.5))  # past MAX_EPOCHS: a model the user sized
EPOCH_LEVELS = ("char", "bpe")  # the levels whose epochs and dropout follow the rules (words: their reference's)


@dataclass(frozen=True)
class Choice:
    """The size of the ladder a run trains, and the epochs of the corpus that each size probed
    was measured to fit."""

    level: str
    size: str  # of the model chosen: "layers x hidden"
    measured: tuple[tuple[str, float], ...]  # (size, epochs) of the models probed, smallest first
    too_large: str | None = None  # the smallest size left off: more than MAX_PARAMS_PER_TOKEN
    few_steps: tuple[str, int] | None = None  # a size that trains MIN_EPOCHS in fewer than MIN_STEPS: its steps
    small_corpus: tuple[str, float] | None = None  # the largest that fits, where SMALL_CORPUS_EPOCHS: its epochs

    @property
    def whole_budget(self) -> bool:
        """Whether the model trains every epoch the budget buys (the smallest, chosen for a small
        corpus), not at most ``MAX_EPOCHS``."""
        return self.small_corpus is not None

    def reason(self, epochs: float | None = None, dropout: float = 0.0, weight_dropout: float = 0.0,
               ends_early: bool = False, params_per_token: float = 1.0) -> str:
        """Why this recipe, in words (``epochs``: those the plan trains, where the dropouts were
        chosen for them, with the model's ``params_per_token``; ``ends_early``: the plan trains
        ``MAX_EPOCHS``, in less than the budget)."""
        sizes = ", ".join(f"{size} {fit:.1f}" for size, fit in self.measured)
        if len(LADDERS[self.level]) == 1:
            text = f"{self.size}, the {self.level} level's one recipe"
        elif self.small_corpus:
            large, fit = self.small_corpus
            text = (f"{self.size}, the smallest, for the whole budget: the largest that fits, {large}, trains "
                    f"{fit:.1f} epochs, {SMALL_CORPUS_EPOCHS:g} or more, of a corpus it over-fits past {MAX_EPOCHS:g} "
                    f"(measured: {sizes})")
        else:
            fits = dict(self.measured).get(self.size, 0.0) >= MIN_EPOCHS
            why = "the largest that trains" if fits else "the fastest; the reference does not train"
            text = f"{self.size}, {why} {MIN_EPOCHS:g} epochs or more (measured: {sizes})"
            if self.few_steps:
                text += f"; {self.few_steps[0]}: {self.few_steps[1]:,} steps, fewer than {MIN_STEPS:,}"
            if self.too_large:
                text += f"; {self.too_large} and larger: more than {MAX_PARAMS_PER_TOKEN} parameters a training token"
        if epochs is not None:
            text += f"; dropout {dropout:g}" + (f" and weight dropout {weight_dropout:g}" if weight_dropout else "")
            text += f" for {epochs:.1f} epochs"
            if params_per_token < 1:
                worth = dropout_epochs(epochs, params_per_token)
                text += f" of {params_per_token:.2f} parameters a training token (as {worth:.2f} for the dropout)"
        if ends_early:
            text += f"; it ends early: {MAX_EPOCHS:g} epochs at most (more over-fit a corpus this small)"
        return text


def walk_ladder(sizes: int, start: int, epochs_of: Callable[[int], float],
                steps_per_epoch: Callable[[int], float] = lambda k: INF) -> int:
    """The index of the largest of ``sizes`` models (smallest first) that trains ``MIN_EPOCHS``
    epochs in ``MIN_STEPS`` steps or more, where ``epochs_of(k)`` measures model k (an epoch of
    it being ``steps_per_epoch(k)`` steps): from ``start`` (the reference) up while the next one
    fits; the smallest where the reference does not fit (it is not measured then)."""
    def fits(k: int) -> bool:
        epochs = epochs_of(k)
        return epochs >= MIN_EPOCHS and epochs * steps_per_epoch(k) >= MIN_STEPS

    if not fits(start):
        return 0
    k = start
    while k + 1 < sizes and fits(k + 1):
        k += 1
    return k


def dropout_epochs(epochs: float, params_per_token: float = 1.0) -> float:
    """The epochs a model's dropout is chosen for: those it trains, fewer for one with fewer
    parameters than the corpus has training tokens (``params_per_token`` below 1), by the square
    root of its parameters a token."""
    return epochs * math.sqrt(min(1.0, params_per_token))


def dropout_for(epochs: float, params_per_token: float = 1.0) -> tuple[float, float]:
    """The dropout and weight dropout of a model that will train ``epochs`` epochs of its corpus
    (``dropout_epochs``: fewer for a model smaller than its corpus)."""
    passes = dropout_epochs(epochs, params_per_token)
    return next((dropout, weight) for bound, dropout, weight in DROPOUTS if passes < bound)


def apply_recipe(config: RunConfig, recipe: Recipe, chosen: set[str] | frozenset[str],
                 train_tokens: int, world_size: int = 1) -> RunConfig:
    """``config`` with the settings in ``chosen`` taken from ``recipe`` (the others stay as they
    are: the user's); the batch size is made smaller for a corpus of fewer than ``RECIPE_BATCHES``
    batches an epoch, and a multiple of the number of processes."""
    taken = {name: getattr(recipe, name) for name in chosen if hasattr(recipe, name)}
    model = {f.name: taken[f.name] for f in fields(ModelConfig) if f.name in taken}
    train = {f.name: taken[f.name] for f in fields(TrainConfig) if f.name in taken}
    config = replace(config, model=replace(config.model, **model), train=replace(config.train, **train))
    if "bs" in chosen:
        bs = fit_batch_size(config.train.bs, config.train.bptt, train_tokens, world_size, RECIPE_BATCHES)
        config = replace(config, train=replace(config.train, bs=bs))
    return config


def fit_batch_size(bs: int, bptt: int, train_tokens: int, world_size: int = 1, batches: int = MIN_BATCHES) -> int:
    """``bs``, made smaller for a corpus of fewer than ``batches`` batches an epoch, and a
    multiple of the number of processes."""
    bs = min(bs, max(1, train_tokens // (bptt * batches)))
    return max(world_size, bs // world_size * world_size)
