"""Where the time goes: torch.profiler tables for training batches and for generation steps.

    python benchmarks/profile_ops.py train [--cell lstm --layers 2 --hidden 512 --emb 64 --bs 64 --bptt 64]
    python benchmarks/profile_ops.py generate [--cell lstm --layers 2 --hidden 512 --emb 42] [--window 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, machine, set_threads  # noqa: E402
from generation import ALPHABET, sliding_window, stateful  # noqa: E402

from rnnlm.config import ModelConfig  # noqa: E402
from rnnlm.data.batching import StreamBatches  # noqa: E402
from rnnlm.data.tokenizers import CharTokenizer  # noqa: E402
from rnnlm.data.vocab import Vocab  # noqa: E402
from rnnlm.models import RecurrentLM  # noqa: E402
from rnnlm.train.learner import Learner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("train", "generate"))
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--emb", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--bptt", type=int, default=64)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--chars", type=int, default=300)
    parser.add_argument("--window", type=int, default=0, help="generate: profile the sliding window of this length")
    parser.add_argument("--rows", type=int, default=15)
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"{machine()}\n")
    vocab = Vocab.build({c: 1 for c in ALPHABET})
    torch.manual_seed(0)
    model = RecurrentLM(len(vocab), ModelConfig(cell=args.cell, layers=args.layers, emb=args.emb,
                                                hidden=args.hidden, dropout=0.2))
    if args.what == "train":
        ids = np.random.default_rng(0).integers(0, len(vocab), args.batches * args.bs * args.bptt + 1, dtype=np.uint8)
        learner = Learner(model, StreamBatches(ids, args.bs, args.bptt), None, lr=1e-3, clip=1.0)
        learner.fit(1, 1e-3)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            learner.fit(1, 1e-3)
    else:
        model.eval()
        tokenizer = CharTokenizer()
        stateful(model, tokenizer, vocab, 20)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            if args.window:
                sliding_window(model, tokenizer, vocab, args.chars, args.window)
            else:
                stateful(model, tokenizer, vocab, args.chars)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))


if __name__ == "__main__":
    main()
