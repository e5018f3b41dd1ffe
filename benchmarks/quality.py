"""Quality per minute on any text: three ways of spending the same time budget, one after the
other, all scored on the same validation characters.

1. ``rnnlm train DATA --budget 10m``, as a user calls it (the command line's own parsing, recipe
   table and plan; its probe, validations and saves all count in the budget).
2. The lessons' recipe: the 2-layer LSTM of lesson 7 (CharSeqStatefulLSTM: emb 42, hidden 512,
   dropout 0.5, bs 64, bptt 8, Adam 1e-2 with weight decay 1e-5, cosine restarts of 1, 2, 4 ...
   epochs) on RecurrentLM, stopped when the budget is spent (its validations count too).
3. A small causal transformer of the size people train on a CPU for character text: 4 layers,
   4 heads, 128 wide, context 64, pre-norm, GELU, dropout 0.1, AdamW (lr 1e-3, betas 0.9/0.99,
   weight decay 0.1), warm-up then cosine decay to the end of the budget (a probe of a few
   steps, counted, sets how many fit), batches of 64 random windows; built here from torch.nn.
   It validates only once, after the budget (which favours it a little).

The scores are not the runs' own: after each run its model (the best one rnnlm kept, the
transformer's last) predicts every character of the validation split from the second one on,
the recurrent models in one stream carrying their state from the first character, the
transformer from the (up to) 64 characters before each (windows of 64 moved 16 at a time, each
scoring its last 16). Tokens are those of rnnlm's vocab for the run's settings (built from the
training split; rarer characters are xxunk for all three), so nats and bits are per character.

    python benchmarks/quality.py --data nietzsche.txt --lower --min-freq 3 [--minutes 10]
    python benchmarks/quality.py --data /tmp/corpora/man-de.txt --cpu --threads 1

--cpu counts the budget of every run in CPU time of this process (use with --threads 1): fair
on a machine shared with other work, where a run that met a busy spell would otherwise get less
computing than one that ran in a quiet one.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, machine, set_threads, shared_data, table  # noqa: E402

from rnnlm.cli import build_parser, config_from_args  # noqa: E402
from rnnlm.cli.train import written_settings  # noqa: E402
from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from rnnlm.data.textdata import TextData, build_text_data  # noqa: E402
from rnnlm.models import detach_state  # noqa: E402
from rnnlm.runfolder import load_run  # noqa: E402
from rnnlm.train.callbacks import Callback  # noqa: E402
from rnnlm.train.run import train  # noqa: E402

LESSONS = (  # 001_...txt: CharSeqStatefulLSTM, LayerOptimizer(Adam, 1e-2, wds=1e-5), CosAnneal
    ModelConfig(cell="lstm", layers=2, emb=42, hidden=512, dropout=0.5),
    TrainConfig(bs=64, bptt=8, epochs=1000, lr=1e-2, wd=1e-5, schedule="sgdr", cycle_len=1, cycle_mult=2,
                clip=0.0, device="cpu"),
)
CONTEXT, WIDTH, LAYERS, HEADS = 64, 128, 4, 4
STRIDE = 16  # validation windows move this far; each scores its last STRIDE characters


@dataclass
class Result:
    name: str
    settings: str
    tokens: int  # trained on
    spent: float  # seconds of the budget's clock
    model: object  # what scores the validation split


class ClockBudget(Callback):
    """Stops training, as --max-minutes would, once ``clock`` says ``seconds`` have passed since
    ``start`` (validations included): the lessons' run under the same clock as the others."""

    def __init__(self, seconds: float, clock, start: float):
        self.seconds, self.clock, self.start = seconds, clock, start

    def on_batch_end(self, learner, loss) -> None:
        if self.clock() - self.start > self.seconds:
            learner.deadline = -math.inf  # the learner stops after this batch and validates


def data_settings(args: argparse.Namespace) -> DataConfig:
    return DataConfig(args.data, lower=args.lower, min_freq=args.min_freq, valid_frac=args.valid_frac)


def run_budget(args: argparse.Namespace, out: Path, clock) -> tuple[Result, str]:
    """``rnnlm train DATA --budget ...`` through the command line's parser and choices."""
    argv = ["train", args.data, "--budget", f"{args.minutes:g}m", "--device", "cpu", "--valid-frac",
            str(args.valid_frac), "--min-freq", str(args.min_freq), "--out", str(out)] + (["--lower"] * args.lower)
    cli = build_parser().parse_args(argv)
    log = io.StringIO()
    start = clock()
    trained = train(config_from_args(cli), cli.out, yours=written_settings(cli), log=log, progress=False, clock=clock)
    folder, learner = trained.folder, trained.learner
    spent = clock() - start
    m, t = learner.model.config, load_run(folder).config.train
    settings = (f"{m.cell} {m.layers}x{m.hidden} emb {m.emb} drop {m.dropout:g}, bs {t.bs} bptt {t.bptt}, "
                f"{t.schedule} lr {t.lr:g}" + (f" wd {t.wd:g}" if t.wd else ""))
    plan = log.getvalue().split("epoch  train_loss")[0].rstrip()
    return Result("rnnlm --budget", settings, learner.tokens_seen, spent, load_run(folder, device="cpu")), plan


def run_lessons(args: argparse.Namespace, out: Path, clock) -> Result:
    model, train_settings = LESSONS
    config = RunConfig(data_settings(args), model, train_settings)
    start = clock()
    trained = train(config, out, callbacks=[ClockBudget(60 * args.minutes, clock, start)], log=io.StringIO(),
                    progress=False)
    folder, learner = trained.folder, trained.learner
    spent = clock() - start
    settings = "lstm 2x512 emb 42 drop 0.5, bs 64 bptt 8, sgdr lr 0.01 wd 1e-05"
    return Result("lessons' 2-layer LSTM", settings, learner.tokens_seen, spent, load_run(folder, device="cpu"))


class CausalTransformer(nn.Module):
    """Token and position embeddings, pre-norm encoder layers under a causal mask, a final norm
    and a linear head tied to the token embedding; weights drawn as GPT-2 draws them."""

    def __init__(self, vocab: int, context: int = CONTEXT, width: int = WIDTH, layers: int = LAYERS,
                 heads: int = HEADS, dropout: float = 0.1):
        super().__init__()
        self.context = context
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tokens.weight
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)
        for module in self.modules():  # GPT-2's initialisation, as nanoGPT
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, T) token ids, T <= context; logits (N, T, V)."""
        t = x.shape[1]
        h = self.drop(self.tokens(x) + self.positions(torch.arange(t, device=x.device)))
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(h))


def run_transformer(args: argparse.Namespace, data: TextData, clock, bs: int = 64) -> Result:
    start = clock()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(np.asarray(data.train_ids, dtype=np.int64))
    model = CausalTransformer(len(data.vocab))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                  lr=1e-3, betas=(0.9, 0.99))

    def step() -> None:
        starts = torch.from_numpy(rng.integers(0, len(ids) - CONTEXT - 1, size=bs))
        window = ids[starts[:, None] + torch.arange(CONTEXT + 1)]
        logits = model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    model.train()
    for group in optimizer.param_groups:  # the probe's steps train at a tenth of the rate, as a warm-up
        group["lr"] = 1e-4
    step()
    probe_start = clock()
    for _ in range(5):
        step()
    per_step = (clock() - probe_start) / 5
    total = max(10, int((60 * args.minutes - (clock() - start)) / per_step))
    warm = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, 0.01, 1.0, warm),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total - warm, eta_min=1e-5)], [warm])
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * 0.01
    done = 0
    while done < total and clock() - start < 60 * args.minutes:
        step()
        schedule.step()
        done += 1
    params = sum(p.numel() for p in model.parameters())
    settings = (f"{LAYERS} layers, {HEADS} heads, {WIDTH} wide, context {CONTEXT}, {params:,} parameters, bs {bs}, "
                f"AdamW 1e-3 cosine, {done:,} of {total:,} steps")
    return Result("small transformer", settings, (done + 6) * bs * CONTEXT, clock() - start, model.eval())


@torch.inference_mode()
def score(model, ids: np.ndarray) -> float:
    """Mean nats of every character of ``ids`` from the second on."""
    ids_t = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    total, count = 0.0, 0
    if isinstance(model, CausalTransformer):
        inputs = len(ids_t) - 1
        windows, pos = [], 0  # (lo, hi, pos): inputs lo..hi, their predictions from pos on scored
        while pos < inputs:
            hi = min(pos + STRIDE if pos >= CONTEXT else CONTEXT, inputs)
            windows.append((max(0, hi - CONTEXT), hi, pos))
            pos = hi
        by_length: dict[int, list[tuple[int, int, int]]] = {}
        for w in windows:
            by_length.setdefault(w[1] - w[0], []).append(w)
        for group in by_length.values():
            for first in range(0, len(group), 64):
                batch = group[first: first + 64]
                x = torch.stack([ids_t[lo:hi] for lo, hi, _ in batch])
                y = torch.stack([ids_t[lo + 1: hi + 1] for lo, hi, _ in batch])
                logits = model(x)
                for row, (lo, hi, pos) in enumerate(batch):
                    total += F.cross_entropy(logits[row, pos - lo:], y[row, pos - lo:], reduction="sum").item()
                    count += hi - pos
        return total / count
    run = model
    state = None
    for lo in range(0, len(ids_t) - 1, 512):
        x, y = ids_t[lo: lo + 512][None], ids_t[lo + 1: lo + 513][None]
        x = x[:, : y.shape[1]]
        logits, state = run.model(x, state)
        state = detach_state(state)
        total += F.cross_entropy(logits[0], y[0], reduction="sum").item()
        count += y.numel()
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(shared_data("nietzsche.txt")), help="a text file (default: Nietzsche)")
    parser.add_argument("--lower", action="store_true", help="lower-case the text (the lessons do, on Nietzsche)")
    parser.add_argument("--min-freq", type=int, default=1, help="rarer characters become xxunk (the lessons: 3)")
    parser.add_argument("--valid-frac", type=float, default=0.2, help="last fraction of the text held out")
    parser.add_argument("--minutes", type=float, default=10.0, help="the budget of each run")
    parser.add_argument("--only", default="budget,lessons,transformer", help="comma-separated subset to run")
    parser.add_argument("--cpu", action="store_true",
                        help="count every budget in CPU time of this process (use with --threads 1)")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    if not Path(args.data).is_file():
        raise SystemExit(f"{args.data}: not found; pass --data FILE")
    clock = time.process_time if args.cpu else time.monotonic
    kind = "CPU" if args.cpu else "wall-clock"
    data = build_text_data(data_settings(args))
    prep = ", ".join([*(["lower-cased"] if args.lower else []), f"min_freq {args.min_freq}",
                      f"last {args.valid_frac:g} held out"])
    print(f"# Quality per {args.minutes:g} {kind} minutes: {Path(args.data).name}\n\n{machine()}; load average at "
          f"start {os.getloadavg()[0]:.1f}\n\n{len(data.train_ids):,} training and {len(data.valid_ids):,} validation "
          f"characters ({prep}), {len(data.vocab)} tokens in the vocab\n", flush=True)
    rows, plans = [], []
    with tempfile.TemporaryDirectory(prefix="rnnlm-quality-") as tmp:
        for name in args.only.split(","):
            wall = time.monotonic()
            if name == "budget":
                result, plan = run_budget(args, Path(tmp) / "budget", clock)
                plans.append(plan)
            elif name == "lessons":
                result = run_lessons(args, Path(tmp) / "lessons", clock)
            elif name == "transformer":
                result = run_transformer(args, data, clock)
            else:
                raise SystemExit(f"--only: unknown run {name!r} (budget, lessons, transformer)")
            nats = score(result.model, data.valid_ids)
            rows.append([result.name, result.settings, f"{result.tokens / len(data.train_ids):.2f}",
                         f"{result.tokens:,}", f"{result.spent / 60:.2f}", f"{nats:.4f}", f"{nats / math.log(2):.4f}"])
            print(f"  {result.name}: {nats:.4f} nats/char ({nats / math.log(2):.4f} bits), "
                  f"{time.monotonic() - wall:.0f} s wall", file=sys.stderr, flush=True)
    print(table(["run", "settings", "epochs", "tokens", f"{kind} minutes", "valid nats/char", "valid bits/char"],
                rows))
    best = min(rows, key=lambda r: float(r[5]))
    print(f"\nbest: {best[0]}; load average at the end {os.getloadavg()[0]:.1f}")
    for plan in plans:
        print(f"\nThe plan rnnlm printed:\n\n```\n{plan}\n```")


if __name__ == "__main__":
    main()
