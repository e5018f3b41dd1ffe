"""Lists (names, words, titles, fortunes): nats per character of held-out items, the end of each
counted, for three ways of spending the same time budget, one after the other.

1. ``rnnlm train DATA --lines --budget Nm`` (or ``--doc-sep``), as a user calls it: documents
   framed by the boundary token, read as streams whose state is carried across boundaries.
2. The same model and settings (the ones the budget run's recipe chose), trained here the way
   makemore trains: batches of whole documents drawn at random, padded to the longest, each read
   from a zero state (the state is reset at every boundary). This answers whether carrying the
   state across boundaries costs quality, and what padding costs in speed.
3. The small transformer of benchmarks/quality.py (4 layers, 4 heads, 128 wide, context 64),
   trained as there on random windows of the training stream.
4. makemore's default model and training, rebuilt here from its settings (4 layers, 4 heads, 64
   wide, no dropout, context the longest item + 1; batches of 32 whole items drawn at random,
   padded, each from its own start; AdamW 5e-4, betas 0.9/0.99, weight decay 0.01, constant rate).

Every model is scored the way makemore scores its test set: each validation document alone (run 1
from the state the model starts an item in, ``rnnlm.evaluation.documents.boundary_state``; run 2
from zeros, as it trained; the transformer from the document's own start, windows of 64 for a
longer one), its tokens and its end predicted; nats per character = the total over characters plus
ends.
Run 1 is also scored with the state carried through the validation stream (what its training
table shows). The validation documents are the run's own random split (``--valid-docs``, default
at most 1,000). Samples of run 1 follow the table, with their verdicts.

    python benchmarks/lists.py --data /usr/share/dict/american-english --lines --minutes 5 --cpu --threads 1
    python benchmarks/lists.py --data fortunes --doc-sep % --minutes 5 --cpu --threads 1
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, machine, set_threads, table  # noqa: E402
from quality import CausalTransformer, Result, run_transformer  # noqa: E402

from rnnlm.cli import build_parser, config_from_args  # noqa: E402
from rnnlm.cli.train import written_settings  # noqa: E402
from rnnlm.config import DataConfig  # noqa: E402
from rnnlm.data.items import load_items  # noqa: E402
from rnnlm.data.textdata import TextData, build_text_data  # noqa: E402
from rnnlm.evaluation.documents import document_spans, evaluate_documents  # noqa: E402
from rnnlm.evaluation.streams import evaluate_stream, stream_batches_for_eval  # noqa: E402
from rnnlm.generation.documents import draw_documents  # noqa: E402
from rnnlm.generation.sampling import Sampling  # noqa: E402
from rnnlm.generation.session import GenerationSession  # noqa: E402
from rnnlm.models import RecurrentLM  # noqa: E402
from rnnlm.runfolder import load_run  # noqa: E402
from rnnlm.train.run import train  # noqa: E402


def list_options(args: argparse.Namespace) -> list[str]:
    options = ["--lines"] if args.lines else ["--doc-sep", args.doc_sep]
    return options + (["--valid-docs", str(args.valid_docs)] if args.valid_docs else [])


def run_budget(args: argparse.Namespace, out: Path, clock) -> tuple[Result, str]:
    """``rnnlm train DATA --lines --budget ...`` through the command line's parser and choices."""
    argv = ["train", args.data, *list_options(args), "--budget", f"{args.minutes:g}m", "--device", "cpu",
            "--out", str(out)]
    cli = build_parser().parse_args(argv)
    log = io.StringIO()
    start = clock()
    trained = train(config_from_args(cli), cli.out, yours=written_settings(cli), log=log, progress=False, clock=clock)
    spent = clock() - start
    m, t = trained.learner.model.config, load_run(trained.folder).config.train
    settings = (f"{m.cell} {m.layers}x{m.hidden} emb {m.emb} drop {m.dropout:g}, bs {t.bs} bptt {t.bptt}, "
                f"{t.schedule} lr {t.lr:g}" + (f" wd {t.wd:g}" if t.wd else ""))
    plan = log.getvalue().split("epoch  train_loss")[0].rstrip()
    return Result("rnnlm --budget (state carried)", settings, trained.learner.tokens_seen, spent,
                  load_run(trained.folder, device="cpu")), plan


def run_reset(args: argparse.Namespace, data: TextData, like, clock) -> Result:
    """The budget run's model and settings, trained on padded batches of whole documents, each from
    a zero state; about as many tokens a step as the stream's ``bs x bptt``; onecycle over the
    steps a probe says fit."""
    start = clock()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    config, t = like.config.model, like.config.train
    model = RecurrentLM(len(data.vocab), config)
    ids = np.asarray(data.train_ids, dtype=np.int64)
    spans = document_spans(ids, data.vocab.bos_id)
    mean = float((spans[:, 1] - spans[:, 0]).mean())
    per_batch = max(1, round(t.bs * t.bptt / mean))
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr / 25, weight_decay=t.wd)

    def step() -> int:
        rows = spans[rng.integers(0, len(spans), size=per_batch)]
        width = int((rows[:, 1] - rows[:, 0]).max())
        x = np.full((per_batch, width), data.vocab.pad_id, dtype=np.int64)
        y = np.full((per_batch, width), -100, dtype=np.int64)
        for r, (a, b) in enumerate(rows):
            x[r, : b - a], y[r, : b - a] = ids[a:b], ids[a + 1 : b + 1]
        logits, _ = model(torch.from_numpy(x))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip)
        optimizer.step()
        return int((y != -100).sum())

    model.train()
    tokens = step()
    probe = clock()
    for _ in range(5):
        tokens += step()
    per_step = (clock() - probe) / 5
    total = max(10, int((60 * args.minutes - (clock() - start)) / per_step))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, t.lr, total_steps=total)
    done = 0
    while done < total and clock() - start < 60 * args.minutes:
        tokens += step()
        schedule.step()
        done += 1
    settings = f"the same model; {per_batch} documents a batch, padded; onecycle lr {t.lr:g}, {done:,} of {total:,} steps"
    return Result("rnnlm model, state reset at each item", settings, tokens, clock() - start, model.eval())


def run_makemore(args: argparse.Namespace, data: TextData, clock, bs: int = 32) -> Result:
    """makemore's defaults: whole items padded to the longest, each from its start; constant rate."""
    start = clock()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = np.asarray(data.train_ids, dtype=np.int64)
    spans = document_spans(ids, data.vocab.bos_id)
    context = int((spans[:, 1] - spans[:, 0]).max())
    model = CausalTransformer(len(data.vocab), context=context, width=64, dropout=0.0)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                  lr=5e-4, betas=(0.9, 0.99), eps=1e-8)
    model.train()
    steps = tokens = 0
    while clock() - start < 60 * args.minutes:
        rows = spans[rng.integers(0, len(spans), size=bs)]
        x = np.full((bs, context), data.vocab.pad_id, dtype=np.int64)
        y = np.full((bs, context), -100, dtype=np.int64)
        for r, (a, b) in enumerate(rows):
            x[r, : b - a], y[r, : b - a] = ids[a:b], ids[a + 1 : b + 1]
        logits = model(torch.from_numpy(x))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        steps, tokens = steps + 1, tokens + int((y != -100).sum())
    params = sum(p.numel() for p in model.parameters())
    settings = f"4 layers, 4 heads, 64 wide, context {context}, {params:,} parameters, bs {bs}, AdamW 5e-4, {steps:,} steps"
    return Result("makemore's defaults (rebuilt)", settings, tokens, clock() - start, model.eval())


@torch.inference_mode()
def score_transformer(model: CausalTransformer, ids: np.ndarray, bos_id: int) -> tuple[float, int]:
    """Total nats and tokens of every document of ``ids``, each from its own start."""
    ids_t = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    total, count = 0.0, 0
    context = model.context
    for a, b in document_spans(ids, bos_id):
        doc_x, doc_y = ids_t[a:b], ids_t[a + 1 : b + 1]
        pos = 0
        while pos < len(doc_x):  # the first window from the start, then windows that score 16 more each
            hi = min(len(doc_x), context if pos == 0 else pos + 16)
            lo = max(0, hi - context)
            logits = model(doc_x[lo:hi][None])[0]
            total += F.cross_entropy(logits[pos - lo :], doc_y[pos:hi], reduction="sum").item()
            count += hi - pos
            pos = hi
    return total, count


def nats_per_char(result: Result, data: TextData) -> tuple[float, float | None]:
    """Nats per character (ends counted) of the validation documents, each alone; and, for rnnlm
    runs, with the state carried through the validation stream."""
    chars = data.valid_characters
    if isinstance(result.model, CausalTransformer):
        total, _ = score_transformer(result.model, data.valid_ids, data.vocab.bos_id)
        return total / chars, None
    model = result.model.model if hasattr(result.model, "model") else result.model
    if not hasattr(result.model, "model"):  # trained with the state reset at every item: it starts from zeros
        alone = evaluate_documents(model, data.valid_ids, data.vocab, torch.device("cpu"), chars,
                                   start=model.init_state(1, "cpu"))
        return alone.nats_per_char, None
    alone = evaluate_documents(model, data.valid_ids, data.vocab, torch.device("cpu"), chars)
    stream = evaluate_stream(model, stream_batches_for_eval(data.valid_ids, 1, 512), torch.device("cpu"))
    return alone.nats_per_char, stream.loss * stream.tokens / chars


def show_samples(folder: Path, count: int) -> None:
    session = GenerationSession.load(folder, device="cpu")
    record = load_items(folder)
    for temperature in (0.8, 1.0):
        drawn = draw_documents(session, session.read(""), record, count, seed=1, max_tokens=2000,
                               sampling=Sampling(temperature))
        print(f"\nSamples of run 1 at temperature {temperature:g} (seed 1):\n\n```")
        for sample in drawn.samples:
            print(f"{sample.verdict:<14} {sample.text}" if "\n" not in sample.text
                  else f"--- {sample.verdict} ---\n{sample.text}")
        print(f"{drawn.summary()}\n```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a list: a text file, one item a line or --doc-sep")
    docs = parser.add_mutually_exclusive_group(required=True)
    docs.add_argument("--lines", action="store_true", help="one item a line")
    docs.add_argument("--doc-sep", default=None, help="items between lines equal to this one")
    parser.add_argument("--valid-docs", type=int, default=None, help="items held out (default: rnnlm's)")
    parser.add_argument("--minutes", type=float, default=5.0, help="the budget of each run")
    parser.add_argument("--only", default="budget,reset,transformer,makemore", help="comma-separated subset to run")
    parser.add_argument("--samples", type=int, default=12, help="samples of run 1 shown at each temperature")
    parser.add_argument("--cpu", action="store_true",
                        help="count every budget in CPU time of this process (use with --threads 1)")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    clock = time.process_time if args.cpu else time.monotonic
    kind = "CPU" if args.cpu else "wall-clock"
    data = build_text_data(DataConfig(args.data, lines=args.lines, doc_sep=args.doc_sep, valid_docs=args.valid_docs))
    print(f"# Lists: {Path(args.data).name}, {args.minutes:g} {kind} minutes a run\n\n{machine()}; load average "
          f"at start {os.getloadavg()[0]:.1f}\n\n{len(data.items.train):,} training and {len(data.items.valid):,} "
          f"validation items ({data.train_characters:,} and {data.valid_characters:,} characters, ends counted), "
          f"{len(data.vocab)} tokens in the vocab\n", flush=True)
    rows, plan, budget = [], None, None
    with tempfile.TemporaryDirectory(prefix="rnnlm-lists-") as tmp:
        for name in args.only.split(","):
            wall = time.monotonic()
            if name == "budget":
                result, plan = run_budget(args, Path(tmp) / "budget", clock)
                budget = result.model
            elif name == "reset":
                if budget is None:
                    raise SystemExit("--only: reset trains the budget run's model; run budget first")
                result = run_reset(args, data, budget, clock)
            elif name == "transformer":
                result = run_transformer(args, data, clock)
            elif name == "makemore":
                result = run_makemore(args, data, clock)
            else:
                raise SystemExit(f"--only: unknown run {name!r} (budget, reset, transformer, makemore)")
            alone, carried = nats_per_char(result, data)
            rows.append([result.name, result.settings, f"{result.tokens / len(data.train_ids):.1f}",
                         f"{result.spent / 60:.2f}", f"{alone:.4f}", f"{alone / math.log(2):.4f}",
                         "" if carried is None else f"{carried:.4f}"])
            print(f"  {result.name}: {alone:.4f} nats/char, {time.monotonic() - wall:.0f} s wall", file=sys.stderr,
                  flush=True)
        print(table(["run", "settings", "epochs", f"{kind} minutes", "nats/char, each item alone", "bits/char",
                     "nats/char, state carried"], rows))
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
        if plan:
            print(f"\nThe plan rnnlm printed:\n\n```\n{plan}\n```")
        if budget is not None and args.samples:
            show_samples(budget.folder, args.samples)


if __name__ == "__main__":
    main()
