"""Batched validation against one stream: the loss many streams read, each from a zero state in
mid-text (cold), warmed up on the 512 tokens before its start (rnnlm before 2026-12-06's second
change), or as rnnlm reads a split now (rnnlm.evaluation.streams: a longer warm-up, fewer streams
for a short split), against ``rnnlm evaluate --streams 1``, and what each costs in time.

Models: a few small ones trained here for ``--epochs`` each (at most ``--minutes``) on the first
``--chars`` of Vim's help files (not a corpus the warm-up length was chosen on), a char LSTM, a
word LSTM and a BPE GRU trained without clipping (the kind whose cold streams read worst), or
the run folders named.

    python benchmarks/validation_warmup.py [--epochs 3] [--threads 1] [RUN ...]
"""

from __future__ import annotations

import argparse
import glob
import io
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, best_times, machine, set_threads, table  # noqa: E402

from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from rnnlm.data.batching import StreamBatches  # noqa: E402
from rnnlm.data.textdata import build_text_data  # noqa: E402
from rnnlm.evaluation.streams import MIN_STREAM_TOKENS, WARMUP_TOKENS, evaluate_stream, stream_batches_for_eval  # noqa: E402
from rnnlm.runfolder import load_run  # noqa: E402
from rnnlm.train.run import train  # noqa: E402

VARIANTS = {  # name: (warm-up tokens, a stream's least length)
    "cold": (0, 1),
    "W 512": (512, 1),
    f"W {WARMUP_TOKENS}, >= {MIN_STREAM_TOKENS}": (WARMUP_TOKENS, MIN_STREAM_TOKENS),
}
MODELS = {  # name: (data options, model options, train options)
    "char lstm 2x256": ({"level": "char"}, {"cell": "lstm", "layers": 2, "hidden": 256}, {}),
    "word lstm 1x256": ({"level": "word", "max_size": 10000}, {"cell": "lstm", "layers": 1, "hidden": 256}, {}),
    "bpe gru 2x256, no clip": ({"level": "bpe", "vocab_size": 2000}, {"cell": "gru", "layers": 2, "hidden": 256},
                               {"clip": 0.0}),
}


def vim_docs(chars: int, folder: Path) -> Path:
    files = sorted(glob.glob("/usr/share/vim/vim*/doc/*.txt"))
    text = "\n".join(Path(f).read_text(encoding="utf-8", errors="replace") for f in files)[:chars]
    path = folder / "vim-doc.txt"
    path.write_text(text, encoding="utf-8")
    return path


def train_models(corpus: Path, folder: Path, epochs: int, minutes: float) -> list[tuple[str, Path]]:
    runs = []
    for name, (data, model, options) in MODELS.items():
        config = RunConfig(DataConfig(source=str(corpus), valid_frac=0.1, **data),
                           ModelConfig(emb=128, dropout=0.1, **model),
                           TrainConfig(bs=64, bptt=32, epochs=epochs, lr=3e-3, max_minutes=minutes, device="cpu",
                                       **options))
        print(f"  training {name}", file=sys.stderr, flush=True)
        runs.append((name, train(config, folder / name.replace(" ", "-").replace(",", ""), log=io.StringIO(),
                                 progress=False).folder))
    return runs


def measure(name: str, folder: Path) -> list[object]:
    run = load_run(folder, device="cpu")
    ids = build_text_data(run.config.data, vocab=run.vocab, tokenizer=run.tokenizer).valid_ids
    t, cpu = run.config.train, torch.device("cpu")
    one = evaluate_stream(run.model, StreamBatches(ids, 1, 1024), cpu).loss
    batches = [stream_batches_for_eval(ids, t.bs, t.bptt, warmup, least) for warmup, least in VARIANTS.values()]
    losses = [evaluate_stream(run.model, b, cpu).loss for b in batches]
    seconds = best_times([lambda b=b: evaluate_stream(run.model, b, cpu) for b in batches], seconds=2.0)
    return ([name, f"{len(ids):,}", f"{batches[0].bs} x {batches[0].stream_len}",
             f"{batches[-1].bs} x {batches[-1].stream_len}", f"{one:.4f}"]
            + [f"{loss:.4f} ({100 * (loss / one - 1):+.2f}%)" for loss in losses]
            + [f"{s:.2f}" for s in seconds])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path, help="run folders to measure instead of training models")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of each model")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time of each model, at most")
    parser.add_argument("--chars", type=int, default=400_000, help="characters of Vim's help files to train on")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"# Validation warm-up\n\n{machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(p.name, p) for p in args.runs] or train_models(vim_docs(args.chars, Path(tmp)), Path(tmp),
                                                                  args.epochs, args.minutes)
        rows = [measure(name, folder) for name, folder in runs]
    print(table(["model", "valid tokens", "streams x length", "now", "one stream"] + list(VARIANTS)
                + [f"s, {name}" for name in VARIANTS], rows))
    print(f"\nW: tokens each stream but the first reads, uncounted, before its start (at most the stream's "
          f"length); >= {MIN_STREAM_TOKENS}: fewer streams for a short split, each at least that long (rnnlm's "
          f"reading now). s: seconds of one validation pass (best of several, alternated).")


if __name__ == "__main__":
    main()
