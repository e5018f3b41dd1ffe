"""bf16 autocast against fp32 on the CPU: an LSTM training step's tokens/s, then what the speed
buys in quality, the validation loss each reaches in the same seconds of training.

Both parts run side by side in one process: the throughput rows alternate fp32 and bf16 calls
(best of several, ``common.best_times``); the quality part trains two copies of one initial model
on the same batches, always stepping the one that has used less of its own training time, so a
busy spell of a shared machine slows both alike. Validation (fp32, exact, 64 streams) is not
counted in that time.

    python benchmarks/precision.py [--minutes 3] [--threads 1] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, best_times, machine, set_threads, shared_data, table  # noqa: E402

from rnnlm.config import DataConfig, ModelConfig  # noqa: E402
from rnnlm.data.batching import StreamBatches  # noqa: E402
from rnnlm.data.textdata import build_text_data  # noqa: E402
from rnnlm.evaluation.streams import evaluate_stream, stream_batches_for_eval  # noqa: E402
from rnnlm.models import RecurrentLM, detach_state  # noqa: E402

EMB, LAYERS, BS, BPTT, LR, CLIP = 64, 2, 64, 16, 2e-3, 1.0
PRECISIONS = ("fp32", "bf16")


class Trainer:
    """One model, its Adam, and the clock of its own training steps."""

    def __init__(self, vocab: int, hidden: int, precision: str):
        torch.manual_seed(0)
        self.model = RecurrentLM(vocab, ModelConfig(cell="lstm", layers=LAYERS, emb=EMB, hidden=hidden, dropout=0.1))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.bf16 = precision == "bf16"
        self.state = None
        self.seconds = 0.0
        self.tokens = 0

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        start = time.perf_counter()
        self.model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits, state = self.model(x, self.state)  # (N, T, V)
        self.state = detach_state(state if not self.bf16 else tuple(s.float() for s in state))
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.seconds += time.perf_counter() - start
        self.tokens += y.numel()


def throughput(hidden: int, seconds: float) -> list[float]:
    """Tokens/s of fp32 and bf16 training steps on random character ids."""
    x = torch.randint(0, 60, (BS, BPTT))
    trainers = [Trainer(60, hidden, p) for p in PRECISIONS]
    times = best_times([lambda t=t: t.step(x, x) for t in trainers], seconds=seconds, min_runs=5)
    return [BS * BPTT / s for s in times]


def quality(corpus: Path, hidden: int, minutes: float, checkpoints: int) -> list[list[object]]:
    data = build_text_data(DataConfig(source=str(corpus), level="char", valid_frac=0.1))
    train = StreamBatches(data.train_ids, BS, BPTT)
    valid = stream_batches_for_eval(data.valid_ids, BS, BPTT)
    trainers = [Trainer(len(data.vocab), hidden, p) for p in PRECISIONS]
    positions = [0, 0]
    rows = []
    for k in range(1, checkpoints + 1):
        until = minutes * 60 * k / checkpoints
        while min(t.seconds for t in trainers) < until:
            i = min(range(2), key=lambda j: trainers[j].seconds)
            x, y = train.batch(positions[i] % len(train))
            trainers[i].step(x, y)
            positions[i] += 1
        losses = [evaluate_stream(t.model, valid, torch.device("cpu")).loss for t in trainers]
        rows.append([hidden, f"{until / 60:.1f}"] + [f"{t.tokens / 1e6:.2f}M / {loss:.4f}" for t, loss in
                                                     zip(trainers, losses)] + [f"{losses[1] - losses[0]:+.4f}"])
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="throughput: time per precision and size")
    parser.add_argument("--minutes", type=float, default=3.0, help="quality: training minutes for each precision")
    parser.add_argument("--checkpoints", type=int, default=3, help="quality: validations along the way")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--corpus", type=Path, default=shared_data("nietzsche.txt"))
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"# bf16 autocast against fp32\n\n{machine()}\n")
    rows = []
    for hidden in args.hidden:
        fp32, bf16 = throughput(hidden, args.seconds)
        rows.append([hidden, f"{fp32:,.0f}", f"{bf16:,.0f}", f"{bf16 / fp32:.2f}x"])
    print(f"LSTM {LAYERS} layers, emb {EMB}, bs {BS}, bptt {BPTT}, Adam: one training step\n")
    print(table(["hidden", "fp32 tokens/s", "bf16 tokens/s", "bf16 / fp32"], rows) + "\n", flush=True)
    rows = []
    for hidden in args.hidden:
        rows += quality(args.corpus, hidden, args.minutes, args.checkpoints)
    print(f"{args.corpus.name}, char level, 10% held out: tokens trained / validation nats per char (fp32)\n")
    print(table(["hidden", "minutes", "fp32", "bf16", "bf16 - fp32"], rows))


if __name__ == "__main__":
    main()
