"""Settings of a run: data, model and training. Validated here, so the API and the CLI agree."""

from __future__ import annotations

import codecs
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rnnlm.errors import RnnlmError, SettingError, in_context, invalid, shown

CELLS = ("lstm", "gru", "rnn")
SCHEDULES = ("constant", "onecycle", "sgdr")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")  # of training steps (rnnlm.device.resolve_precision)
DECODE_ERRORS = ("strict", "replace", "ignore")
MAX_TRAINING_SEED = 2**32 - 1  # numpy's seeds stop there (training seeds numpy too)
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}
LEVELS = ("char", "word", "bpe")
BPE_MIN_VOCAB, BPE_MAX_VOCAB = 259, 1 << 16  # the 256 bytes and 3 specials; ids that fit uint16
MAX_DOC_SEP = 200  # characters of a --doc-sep line
MAX_VALID_DOCS = 1000  # documents of a list held out by default, at most (as makemore holds out its test set)
BPE_DEFAULT_VOCAB = 512  # the best of 512 and 2048 on Nietzsche in 5 CPU minutes (benchmarks/levels.py)
# Fine-tuning (--init-from), measured by benchmarks/fine_tune.py (its results: benchmarks/README.md)
FREEZE_DEFAULT = 0.0  # share of the schedule that trains the vocabulary's layers alone
LAYER_DECAY_DEFAULT = 1.0  # each recurrent layer learns at the rate of the one above divided by this


def _check(ok: bool, field: str, reason: str) -> None:
    """Raise ``{field} reason`` (a SettingError) unless ``ok``."""
    if not ok:
        raise invalid(field, reason)


def _require(ok: bool, error: SettingError) -> None:
    if not ok:
        raise error


def _positive(field: str, value: float) -> None:
    _check(value > 0 and math.isfinite(value), field, f"must be > 0 (got {value})")


def _fits(value: Any, hint: Any) -> bool:
    """``value`` is of the annotated type ``hint`` (bool is not a number here; an int is a float)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, hint)


TYPE_NAMES = {int: "a whole number", float: "a number", str: "text", bool: "true or false", type(None): "none"}


def _type_name(hint: Any) -> str:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    return TYPE_NAMES.get(hint, "a list")


def _check_types(section: Any) -> None:
    """Every field holds a value of its annotated type (settings read from a JSON file may not)."""
    hints = typing.get_type_hints(type(section))
    for f in fields(section):
        value = getattr(section, f.name)
        if not _fits(value, hints[f.name]):
            raise invalid(f.name, f"must be {_type_name(hints[f.name])} (got {shown(value)})")


def check_path(field: str, value: str) -> None:
    _check(value != "", field, "must not be empty")
    _check("\0" not in value, field, f"must not contain a NUL character (got {shown(value)})")


def check_encoding(encoding: str) -> None:
    """A text encoding Python knows (``base64`` and the like are codecs, not text encodings)."""
    try:
        codecs.lookup(encoding)
        b"x".decode(encoding, "replace")
    except (LookupError, ValueError):
        raise invalid("encoding", f"{shown(encoding)}: not a text encoding (try utf-8, latin-1, cp1252 "
                                  "or utf-16)") from None


@dataclass
class DataConfig:
    source: str = "human-numbers"
    level: str | None = None  # None: the level the source suits (word for human-numbers, else char)
    lower: bool = False
    min_freq: int = 1
    max_size: int | None = None
    valid_frac: float = 0.2
    valid: str | None = None
    encoding: str = "utf-8"  # of the text files; utf-8 also reads UTF-16/32 files that start with a BOM
    errors: str = "strict"  # what bytes the encoding cannot read become: strict (an error), replace, ignore
    vocab_size: int | None = None  # bpe level: tokens to learn, specials and the 256 bytes included
    # Documents (docs/lists.md): every non-empty line is one (lines), or the pieces between lines
    # equal to doc_sep; each is framed by xxbos, and validation is documents drawn at random.
    lines: bool = False
    doc_sep: str | None = None
    valid_docs: int | None = None  # documents held out (default: valid_frac of them, at most MAX_VALID_DOCS)

    @property
    def documents(self) -> bool:
        """Whether the corpus is read as documents framed by a boundary token (a list)."""
        return self.lines or self.doc_sep is not None

    def validate(self) -> None:
        _check_types(self)
        check_path("source", self.source)
        if self.valid is not None:
            check_path("valid", self.valid)
        self.validate_documents()
        _check(self.level in (None, *LEVELS), "level", f"must be one of {', '.join(LEVELS)} (got {shown(self.level)})")
        _check(self.min_freq >= 1, "min_freq", f"must be >= 1 (got {self.min_freq})")
        _check(self.max_size is None or self.max_size >= 1, "max_size", f"must be >= 1 (got {self.max_size})")
        if self.vocab_size is not None:
            _require(self.level == "bpe", SettingError(
                "vocab_size", f"{{vocab_size}} needs {{level}} bpe (got {{level}} {self.level or 'unset'}); "
                              "the char and word vocabs take {min_freq} and {max_size}"))
            _check(BPE_MIN_VOCAB <= self.vocab_size <= BPE_MAX_VOCAB, "vocab_size",
                   f"must be in {BPE_MIN_VOCAB}..{BPE_MAX_VOCAB}: at least the 256 bytes and 3 special "
                   f"tokens (got {self.vocab_size})")
        _require(self.level != "bpe" or self.max_size is None, SettingError(
            "max_size", "{max_size} does not apply at {level} bpe; {vocab_size} sets the size of its vocab"))
        _check(0 < self.valid_frac < 1, "valid_frac", f"must be in (0, 1) (got {self.valid_frac})")
        check_encoding(self.encoding)
        _check(self.errors in DECODE_ERRORS, "errors",
               f"must be one of {', '.join(DECODE_ERRORS)} (got {shown(self.errors)})")

    def validate_documents(self) -> None:
        _require(not (self.lines and self.doc_sep is not None), SettingError(
            "doc_sep", "{lines} and {doc_sep} both say what a document is: give one of them"))
        if self.doc_sep is not None:
            _check(self.doc_sep.strip() != "", "doc_sep", "must not be empty or blank: a blank line cannot be told "
                                                          "from a document's own empty lines")
            _check(not any(c in self.doc_sep for c in "\n\r\0"), "doc_sep",
                   f"must be one line, without a newline or NUL (got {shown(self.doc_sep)})")
            _check(len(self.doc_sep) <= MAX_DOC_SEP, "doc_sep", f"must be at most {MAX_DOC_SEP} characters")
        if self.valid_docs is not None:
            _require(self.documents, SettingError(
                "valid_docs", "{valid_docs} needs documents: {lines} or {doc_sep} (other corpora split by position)"))
            _check(self.valid_docs >= 1, "valid_docs", f"must be >= 1 (got {self.valid_docs})")
            _require(self.valid is None, SettingError(
                "valid_docs", "{valid_docs} and {valid} both give the validation split: give one of them"))


@dataclass
class ModelConfig:
    cell: str = "lstm"
    layers: int = 2
    emb: int = 128
    hidden: int = 256
    dropout: float = 0.1
    tie: bool = False
    # AWD-LSTM regularisation, all off by default
    emb_dropout: float = 0.0  # drop whole rows of the embedding (every use of a token in a batch)
    weight_dropout: float = 0.0  # DropConnect on the hidden-to-hidden matrices
    locked_dropout: bool = False  # --dropout masks fixed across the time steps of a batch

    def validate(self) -> None:
        _check_types(self)
        _check(self.cell in CELLS, "cell", f"must be one of {', '.join(CELLS)} (got {shown(self.cell)})")
        _check(self.layers >= 1, "layers", f"must be >= 1 (got {self.layers})")
        _check(self.emb >= 1, "emb", f"must be >= 1 (got {self.emb})")
        _check(self.hidden >= 1, "hidden", f"must be >= 1 (got {self.hidden})")
        for name in ("dropout", "emb_dropout", "weight_dropout"):
            value = getattr(self, name)
            _check(0 <= value < 1, name, f"must be in [0, 1) (got {value})")
        _require(not self.tie or self.emb == self.hidden, SettingError(
            "tie", f"{{tie}} needs {{emb}} equal to {{hidden}} (got {self.emb} and {self.hidden})"))


@dataclass
class TrainConfig:
    bs: int = 64
    bptt: int = 20
    epochs: int = 15
    lr: float = 1e-2
    # Manual phases, the lessons' set_lrs: [(rate, epochs), ...] run one after the other on the
    # same optimiser; when given they replace lr and epochs.
    phases: list[tuple[float, int]] | None = None
    schedule: str | None = None  # None: onecycle for one rate, constant for phases
    cycle_len: int = 1
    cycle_mult: int = 2
    clip: float = 1.0  # max gradient norm; 0 turns clipping off
    wd: float = 0.0  # decoupled weight decay (AdamW)
    ar: float = 0.0  # activation regularisation: ar * mean(dropped last-layer output ** 2)
    tar: float = 0.0  # temporal AR: tar * mean((h[t] - h[t-1]) ** 2) on the last layer
    seed: int = 42
    max_minutes: float | None = None
    budget: float | None = None  # seconds for the whole run (--budget): a measured plan sets the schedule's length
    patience: int | None = None  # stop after this many epochs without a better valid loss
    save_every: int | None = None  # batches between resumable saves (always at each epoch end)
    device: str = "auto"
    # bf16: training steps under bfloat16 autocast (validation, evaluation and generation stay fp32);
    # auto: bf16 where the CPU has bfloat16 instructions, else fp32; None: auto under a budget (time
    # is what it buys), fp32 otherwise. A run records the one it used.
    precision: str | None = None

    def plan(self) -> list[tuple[float, int]]:
        """The phases to run, as (rate, epochs) pairs."""
        return [(float(lr), int(n)) for lr, n in self.phases] if self.phases else [(self.lr, self.epochs)]

    @property
    def schedule_name(self) -> str:
        return self.schedule or ("constant" if self.phases else "onecycle")

    @property
    def total_epochs(self) -> int:
        return sum(n for _, n in self.plan())

    def validate(self) -> None:
        _check_types(self)
        _check(self.bs >= 1, "bs", f"must be >= 1 (got {self.bs})")
        _check(self.bptt >= 1, "bptt", f"must be >= 1 (got {self.bptt})")
        if self.phases is not None:
            _check(isinstance(self.phases, (list, tuple)) and len(self.phases) > 0, "lr",
                   "phases must be RATE:EPOCHS pairs, comma separated (e.g. 1e-3:4,1e-4:4)")
            for phase in self.phases:
                _check(isinstance(phase, (list, tuple)) and len(phase) == 2, "lr",
                       f"phase {shown(phase)} must be a RATE:EPOCHS pair")
                _check(_fits(phase[0], float), "lr", f"phase {shown(phase)} needs a number as its rate")
                _positive("lr", phase[0])
                _check(_fits(phase[1], int) and phase[1] >= 1, "lr",
                       f"phase {phase[0]}:{phase[1]} needs a whole number of epochs >= 1")
        _check(self.epochs >= 1, "epochs", f"must be >= 1 (got {self.epochs})")
        _positive("lr", self.lr)
        _check(self.schedule is None or self.schedule in SCHEDULES, "schedule",
               f"must be one of {', '.join(SCHEDULES)} (got {shown(self.schedule)})")
        _check(self.cycle_len >= 1, "cycle_len", f"must be >= 1 (got {self.cycle_len})")
        _check(self.cycle_mult >= 1, "cycle_mult", f"must be >= 1 (got {self.cycle_mult})")
        _check(self.clip >= 0 and math.isfinite(self.clip), "clip", f"must be >= 0 (got {self.clip})")
        for name in ("wd", "ar", "tar"):
            value = getattr(self, name)
            _check(value >= 0 and math.isfinite(value), name, f"must be >= 0 (got {value})")
        _check(0 <= self.seed <= MAX_TRAINING_SEED, "seed", f"must be in 0..{MAX_TRAINING_SEED} (got {self.seed})")
        if self.max_minutes is not None:
            _positive("max_minutes", self.max_minutes)
        if self.budget is not None:
            _positive("budget", self.budget)
            _require(self.max_minutes is None, SettingError(
                "budget", "{budget} and {max_minutes} both set the time: give one of them"))
        _check(self.patience is None or self.patience >= 1, "patience", f"must be >= 1 (got {self.patience})")
        _check(self.save_every is None or self.save_every >= 1, "save_every", f"must be >= 1 (got {self.save_every})")
        _check(self.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)} (got {shown(self.device)})")
        _check(self.precision is None or self.precision in PRECISIONS, "precision",
               f"must be one of {', '.join(PRECISIONS)} (got {shown(self.precision)})")


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``10m``, ``1.5h`` or ``1h30m``; RnnlmError for anything else."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)([smh])", cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", cleaned):
            _check(float(cleaned) > 0, "budget", f"{shown(text)}: must be more than zero")
            raise invalid("budget", f"{shown(text)}: give a unit: {cleaned}s, {cleaned}m or {cleaned}h")
        raise invalid("budget", f"{shown(text)}: not a duration (e.g. 90s, 10m, 1.5h)")
    seconds = sum(float(n) * DURATION_UNITS[u] for n, u in parts)
    _check(seconds > 0 and math.isfinite(seconds), "budget", f"{shown(text)}: must be more than zero")
    return seconds


def duration_text(seconds: float) -> str:
    """``10m``, ``1h30m``, ``90s``, ``2.5s``: the short form a person would write."""
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def _check_plan(ok: bool, reason: str) -> None:
    """A plan is written by rnnlm, never by the user: a wrong one is a damaged run folder."""
    if not ok:
        raise RnnlmError(f"plan: {reason}")


@dataclass
class BudgetPlan:
    """What ``--budget`` decided once, from a measured probe: the schedule in optimiser steps,
    where to validate, and what the time was expected to buy. Saved in config.json, so a resumed
    run and every torchrun process follow the same plan."""

    budget: float  # seconds for the whole run, the probe included
    steps: int  # optimiser steps of the whole schedule
    phases: list[tuple[float, int]]  # (peak rate, steps) one after the other; they add up to steps
    valid_at: list[int]  # the steps after which the model is validated; the last is steps
    tokens_per_s: float  # measured training speed, all processes together
    valid_s: float  # expected seconds of one validation (and the saves after it)
    setup_s: float  # seconds spent before training: reading the corpus, the probe
    cycle_steps: list[int] | None = None  # sgdr: steps of the first cycle of each phase
    chosen: list[str] | None = None  # settings the recipe rules chose (the rest: the user's or defaults)
    recipe: str | None = None  # why they chose that recipe, in words
    valid_tokens: int | None = None  # validated on about this many held-out tokens, spread over them (None: all)
    asked: float | None = None  # the budget given, where the plan ends before it (rnnlm.train.recipe.MAX_EPOCHS)

    @property
    def limit(self) -> float:
        """Seconds the run may take: the budget given (a plan that ends early is not held to its own)."""
        return self.budget if self.asked is None else self.asked

    def validate(self) -> None:
        _check_types(self)
        _check_plan(self.budget > 0 and self.steps >= 1, "budget and steps must be > 0")
        _check_plan(all(isinstance(p, (list, tuple)) and len(p) == 2 and _fits(p[0], float) and p[0] > 0
                        and _fits(p[1], int) and p[1] >= 1 for p in self.phases)
                    and sum(p[1] for p in self.phases) == self.steps,
                    "phases must be (rate, steps) pairs adding up to its steps")
        _check_plan(all(_fits(v, int) for v in self.valid_at) and list(self.valid_at) == sorted(set(self.valid_at))
                    and len(self.valid_at) >= 1 and self.valid_at[0] >= 1 and self.valid_at[-1] == self.steps,
                    "valid_at must be increasing steps ending at its steps")
        _check_plan(self.cycle_steps is None or (len(self.cycle_steps) == len(self.phases) and all(
            _fits(c, int) and c >= 1 for c in self.cycle_steps)), "cycle_steps must be steps >= 1, one a phase")
        _check_plan(self.valid_tokens is None or self.valid_tokens >= 2, "valid_tokens must be >= 2")
        _check_plan(self.asked is None or (math.isfinite(self.asked) and self.asked >= self.budget),
                    "asked must be at least its budget")
        _check_plan(all(math.isfinite(v) and v >= 0 for v in (self.tokens_per_s, self.valid_s, self.setup_s)),
                    "its timings must be finite and >= 0")


@dataclass
class FineTuneConfig:
    """A run that starts from a trained one (``init_from``, a run folder): its weights, its
    architecture and its tokenizer (rnnlm.train.base). The settings come first; the fields
    after them record what the base was, filled in when the run starts."""

    init_from: str | None = None
    extend_vocab: bool = False  # the new text's tokens the base does not know get rows of their own
    freeze: float = FREEZE_DEFAULT  # share of the schedule training the embedding and head alone
    layer_decay: float = LAYER_DECAY_DEFAULT  # rate of a recurrent layer = the one above's / this
    base_name: str | None = None  # the name of the base's folder
    base_data: str | None = None  # the corpus the base trained on
    base_vocab: int | None = None  # tokens of the base's vocab: the first ids of this run's
    base_weights: str | None = None  # SHA-256 of the base's model.safetensors
    base_chain: list[str] | None = None  # the run folders the base started from, nearest first
    unknown_tokens: int | None = None  # tokens of the training split the base's vocab does not hold

    def validate(self) -> None:
        _check_types(self)
        for name in ("extend_vocab", "freeze", "layer_decay"):
            _require(self.init_from is not None or getattr(self, name) == getattr(FineTuneConfig, name),
                     SettingError(name, f"{{{name}}} needs {{init_from}}: it tunes a run that starts from a "
                                        "trained one"))
        if self.init_from is not None:
            check_path("init_from", self.init_from)
        _check(0 <= self.freeze < 1, "freeze", f"must be in [0, 1) (got {self.freeze})")
        _check(self.layer_decay >= 1 and math.isfinite(self.layer_decay), "layer_decay",
               f"must be >= 1 (got {self.layer_decay}); 1 trains every layer at the same rate")
        _check(self.base_chain is None or all(isinstance(n, str) for n in self.base_chain), "base_chain",
               "must be a list of run names")


@dataclass
class RunConfig:
    """A run's settings. ``given`` names (by field) the settings the user gave, where that is
    known (the command line: a setting left at its default counts as not given); the rest are
    defaults that a --budget run's recipe rules may choose. None: every setting is the caller's,
    as in a config built in code. config.json does not keep it."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    plan: BudgetPlan | None = None  # a --budget run's plan, made once when it starts
    fine_tune: FineTuneConfig | None = None  # a run that starts from a trained one
    given: frozenset[str] | None = field(default=None, compare=False)

    def validate(self) -> None:
        self.check_given()
        self.data.validate()
        self.model.validate()
        self.train.validate()
        if self.plan is not None:
            self.plan.validate()
        if self.fine_tune is not None:
            self.fine_tune.validate()

    @property
    def base(self) -> str | None:
        """The run this one starts from (None: from scratch)."""
        return self.fine_tune.init_from if self.fine_tune is not None else None

    def given_fields(self) -> frozenset[str]:
        """The settings the user gave: ``given``, or where that is not known, those that are not
        at their default (as the command line counts them)."""
        if self.given is not None:
            return self.given
        defaults = (DataConfig(), ModelConfig(), TrainConfig())
        return frozenset(f.name for section, default in zip((self.data, self.model, self.train), defaults)
                         for f in fields(section) if getattr(section, f.name) != getattr(default, f.name))

    def check_given(self) -> None:
        """The epochs come from the phases, or from the budget's plan: the user gives none."""
        if self.given is None or "epochs" not in self.given:
            return
        _require(not self.train.phases, SettingError(
            "epochs", "{epochs} conflicts with {lr} phases, which give the epochs of each phase"))
        _require(self.train.budget is None, SettingError(
            "epochs", "{budget} sets the epochs to what fits in the time; drop {epochs} (or {budget})"))

    def to_dict(self) -> dict[str, Any]:
        """The sections; ``plan`` and ``fine_tune`` only where the run has them (an rnnlm that
        knows neither reads such a run's config.json as a plain run's)."""
        sections = {"data": asdict(self.data), "model": asdict(self.model), "train": asdict(self.train)}
        if self.plan:
            sections["plan"] = asdict(self.plan)
        if self.fine_tune:
            sections["fine_tune"] = asdict(self.fine_tune)
        return sections

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "RunConfig":
        """Rebuild from ``to_dict`` output; unknown keys are refused, missing keys take defaults."""
        parts = {}
        kinds = [("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)]
        kinds += [(key, kind) for key, kind in (("plan", BudgetPlan), ("fine_tune", FineTuneConfig))
                  if obj.get(key) is not None]
        for key, kind in kinds:
            section = obj.get(key, {})
            if not isinstance(section, dict):
                raise RnnlmError(f"config section {key!r} must be an object")
            known = {f.name for f in fields(kind)}
            unknown = set(section) - known
            if unknown:
                raise RnnlmError(f"config section {key!r} has unknown keys: {shown(', '.join(sorted(unknown)))}")
            try:
                parts[key] = kind(**section)
            except TypeError as e:
                raise RnnlmError(f"config section {key!r}: {e}") from None
        config = cls(**parts)
        try:
            config.validate()
        except RnnlmError as e:
            raise in_context(e, "config has a wrong value") from None
        return config
