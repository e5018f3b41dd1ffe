"""Training throughput: tokens/s of rnnlm's fit loop for rnn/gru/lstm at a few sizes, and the
achieved GFLOP/s as a fraction of the fp32 matmul peak measured in the same run.

FLOPs counted per token (matmuls only; gate nonlinearities, embedding lookup, softmax, loss
and the optimiser step are left out):

    forward  = sum over layers of 2 * gates * hidden * (input + hidden)  +  2 * hidden * vocab
    training = 3 * forward   (the backward pass costs about twice the forward one)

with gates = 1 (rnn), 3 (gru), 4 (lstm), input = emb for the first layer and hidden after it.
The peak is the faster of two square fp32 matmuls (2 n^3 FLOPs), one through MKL (torch.mm)
and one through oneDNN, with the same number of threads, measured right before and after each
row so that both see the same machine.

    python benchmarks/train_throughput.py [--seconds 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, machine, matmul_peak_gflops, set_threads, table  # noqa: E402

from rnnlm.config import ModelConfig  # noqa: E402
from rnnlm.data.batching import StreamBatches  # noqa: E402
from rnnlm.models import RecurrentLM  # noqa: E402
from rnnlm.train.learner import Learner  # noqa: E402

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
VOCAB = 60  # a character vocab (Nietzsche lower-cased has 58)

# (cell, layers, emb, hidden, bs, bptt); the last two rows are the recipes of benchmarks/quality.py:
# rnnlm's recommended one, then the lessons' one.
CONFIGS = [
    ("rnn", 1, 64, 256, 64, 64),
    ("gru", 1, 64, 256, 64, 64),
    ("lstm", 1, 64, 256, 64, 64),
    ("rnn", 2, 128, 512, 64, 64),
    ("gru", 2, 128, 512, 64, 64),
    ("lstm", 2, 128, 512, 64, 64),
    ("lstm", 2, 128, 512, 128, 64),
    ("lstm", 2, 128, 1024, 64, 64),
    ("lstm", 2, 64, 512, 64, 16),
    ("lstm", 2, 42, 512, 64, 8),
]


def forward_flops_per_token(cell: str, layers: int, emb: int, hidden: int, vocab: int) -> int:
    inputs = [emb] + [hidden] * (layers - 1)
    return sum(2 * GATES[cell] * hidden * (i + hidden) for i in inputs) + 2 * hidden * vocab


def measure(cell: str, layers: int, emb: int, hidden: int, bs: int, bptt: int, seconds: float) -> float:
    """Tokens per second of Learner.fit after a warm-up, over about ``seconds`` of training."""
    torch.manual_seed(0)
    model = RecurrentLM(VOCAB, ModelConfig(cell=cell, layers=layers, emb=emb, hidden=hidden, dropout=0.1))
    rng = np.random.default_rng(0)

    def batches(n: int) -> StreamBatches:
        return StreamBatches(rng.integers(0, VOCAB, size=n * bs * bptt + 1, dtype=np.uint8), bs, bptt)

    learner = Learner(model, batches(2), None, lr=1e-3, clip=1.0)
    start = time.perf_counter()
    learner.fit(1, 1e-3)
    per_batch = time.perf_counter() - start
    learner.train_data = batches(max(2, int(seconds / max(per_batch / 2, 1e-4))))
    start = time.perf_counter()
    learner.fit(1, 1e-3)
    took = time.perf_counter() - start
    return learner.train_data.tokens / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="training time per configuration")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"# Training throughput\n\n{machine()}\n")
    rows = []
    for cell, layers, emb, hidden, bs, bptt in CONFIGS:
        before = matmul_peak_gflops(seconds=0.5)
        tokens_per_s = measure(cell, layers, emb, hidden, bs, bptt, args.seconds)
        after = matmul_peak_gflops(seconds=0.5)
        mkl, onednn = ((before[k] + after[k]) / 2 for k in ("mkl", "onednn"))
        peak = max(mkl, onednn)
        gflops = 3 * forward_flops_per_token(cell, layers, emb, hidden, VOCAB) * tokens_per_s / 1e9
        rows.append([cell, layers, emb, hidden, bs, bptt, f"{tokens_per_s:,.0f}", f"{gflops:.1f}", f"{mkl:.0f}",
                     f"{onednn:.0f}", f"{100 * gflops / peak:.0f}%"])
        print(f"  {cell} {layers}x{hidden} bs {bs} bptt {bptt}: {tokens_per_s:,.0f} tokens/s", file=sys.stderr,
              flush=True)
    print(table(["cell", "layers", "emb", "hidden", "bs", "bptt", "tokens/s", "GFLOP/s", "mm MKL", "mm oneDNN",
                 "of peak"], rows))
    print("\nmm MKL, mm oneDNN: GFLOP/s of an fp32 2048 x 2048 matmul through each library, measured just "
          "before and after each row (their mean); the peak is the larger. torch's LSTM runs on oneDNN, "
          "its GRU and RNN on MKL.")


if __name__ == "__main__":
    main()
