"""The recipe table: what ``--budget`` trains when the user names no model.

A row is picked by the level, the size of the training split (tokens) and how much the budget
buys on this machine, counted as the epochs of the level's reference recipe that fit in it
(measured by a probe of that recipe): a faster machine or a longer budget is the same thing. The
rows come from benchmarks/recipe_sweep.py (its results are in benchmarks/README.md): on each
corpus size and budget of the sweep, the recipe that reached the lowest validation loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from rnnlm.config import ModelConfig, RunConfig, TrainConfig

RECIPE_FIELDS = ("cell", "layers", "hidden", "emb", "dropout", "bs", "bptt", "lr", "wd")
MIN_BATCHES = 8  # batches an epoch, at least, when the recipe chooses the batch size


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

    def describe(self) -> str:
        return (f"{self.cell} {self.layers}x{self.hidden} emb {self.emb} dropout {self.dropout:g}, bs {self.bs} "
                f"bptt {self.bptt}, lr {self.lr:g}" + (f" wd {self.wd:g}" if self.wd else ""))


@dataclass(frozen=True)
class Row:
    """``recipe`` for ``level`` corpora of up to ``max_tokens`` training tokens, when up to
    ``max_epochs`` epochs of the reference recipe fit in the budget."""

    level: str
    max_tokens: float
    max_epochs: float
    recipe: Recipe

    @property
    def name(self) -> str:
        size = "any size" if math.isinf(self.max_tokens) else f"<= {self.max_tokens:,.0f} tokens"
        reach = "" if math.isinf(self.max_epochs) else f", <= {self.max_epochs:g} reference epochs"
        return f"{self.level}, {size}{reach}"


REFERENCE = Recipe("lstm", 2, 512, 64, 0.2, 64, 16, 3e-3)  # the probe that measures the machine
WORD_REFERENCE = Recipe("lstm", 2, 512, 256, 0.3, 64, 32, 3e-3)
REFERENCES = {"char": REFERENCE, "word": WORD_REFERENCE, "bpe": REFERENCE}  # by level
INF = math.inf

# benchmarks/recipe_sweep.py on 4 corpora (benchmarks/README.md, "The recipe sweep"): each row is
# the candidate with the lowest validation loss on the corpus size it stands for, where the sweep
# reached that far; the rows for higher reach follow the trend it showed (more epochs: more dropout).
TABLE = (
    # 120,000 characters, 7 reference epochs: dropout 0.3 beat 0.5
    Row("char", 250_000, INF, replace(REFERENCE, dropout=0.3)),
    # Nietzsche, 480,000 characters, 4 reference epochs: dropout 0.2 (1.318) = 0.3 (1.320), 2 x 768 1.381
    Row("char", 1_000_000, 6, REFERENCE),
    Row("char", 1_000_000, INF, replace(REFERENCE, dropout=0.3)),  # more epochs: the small corpus's dropout
    # German manual pages, 1.7 million characters, 0.7 reference epochs: 1 x 512 1.275 (1.8 epochs),
    # 2 x 512 1.417, 2 x 768 1.708: less than an epoch of the reference fits, a faster model wins
    Row("char", 4_000_000, INF, replace(REFERENCE, layers=1)),
    # Vim's help, 7.6 million characters, 0.1 reference epochs
    Row("char", INF, INF, replace(REFERENCE, dropout=0.0)),
    Row("word", INF, INF, WORD_REFERENCE),
    # BPE: benchmarks/levels.py trained the character recipe at every level (BPE 512 2.120 bits/char
    # against 2.447 for characters in 5 CPU minutes); no sweep of its own yet
    Row("bpe", INF, INF, REFERENCE),
)


def choose_row(level: str, tokens: int, reference_epochs: float) -> Row:
    """The first row of ``level`` whose corpus size and reach cover the run."""
    rows = [r for r in TABLE if r.level == level]
    return next((r for r in rows if tokens <= r.max_tokens and reference_epochs <= r.max_epochs), rows[-1])


def apply_recipe(config: RunConfig, recipe: Recipe, chosen: set[str] | frozenset[str],
                 train_tokens: int, world_size: int = 1) -> RunConfig:
    """``config`` with the settings in ``chosen`` taken from ``recipe`` (the others stay as they
    are: the user's); the batch size is made smaller for a corpus of fewer than ``MIN_BATCHES``
    batches an epoch, and a multiple of the number of processes."""
    taken = {name: getattr(recipe, name) for name in chosen if hasattr(recipe, name)}
    model = {f.name: taken[f.name] for f in fields(ModelConfig) if f.name in taken}
    train = {f.name: taken[f.name] for f in fields(TrainConfig) if f.name in taken}
    config = replace(config, model=replace(config.model, **model), train=replace(config.train, **train))
    if "bs" in chosen:
        bs = fit_batch_size(config.train.bs, config.train.bptt, train_tokens, world_size)
        config = replace(config, train=replace(config.train, bs=bs))
    return config


def fit_batch_size(bs: int, bptt: int, train_tokens: int, world_size: int = 1) -> int:
    """``bs``, made smaller for a corpus of fewer than ``MIN_BATCHES`` batches an epoch, and a
    multiple of the number of processes."""
    bs = min(bs, max(1, train_tokens // (bptt * MIN_BATCHES)))
    return max(world_size, bs // world_size * world_size)
