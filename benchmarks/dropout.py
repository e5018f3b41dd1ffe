"""Training steps with dropout from random bits (rnnlm.models.dropout) against torch's dropout.

Two learners of the same model (the same initial weights, the same batches) train in turn, a few
steps each: one with the model's dropouts as rnnlm draws them (after the last layer, between the
layers, on the hidden-to-hidden weights), one with torch's (``F.dropout``, and the fused module's
own between its layers); each keeps its fastest mean over several rounds.

    .venv/bin/python benchmarks/dropout.py            # bf16 where the CPU has it, 2 torch threads
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import add_threads_option, machine, set_threads, table  # noqa: E402
from rnnlm.config import ModelConfig  # noqa: E402
from rnnlm.data.batching import StreamBatches  # noqa: E402
from rnnlm.device import resolve_precision  # noqa: E402
from rnnlm.models import RecurrentLM  # noqa: E402
from rnnlm.models.dropout import Dropout  # noqa: E402
from rnnlm.train.learner import Learner  # noqa: E402

CASES = [(1, 512, 0.1, 0.0), (1, 512, 0.3, 0.3), (2, 512, 0.2, 0.0), (2, 768, 0.3, 0.3)]  # layers, hidden, dropouts


class TorchDropout(Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training)


def torch_recur(self: RecurrentLM, rnn: torch.nn.RNNBase, x: torch.Tensor, state):
    """``RecurrentLM._recur`` with torch's dropouts: the fused module's own between its layers,
    ``F.dropout`` on the hidden-to-hidden weights."""
    p = self.config.weight_dropout
    if not self.training or p == 0:
        return rnn(x, state)
    dropped = {name: F.dropout(w, p) for name, w in rnn.named_parameters() if name.startswith("weight_hh")}
    return functional_call(rnn, dropped, (x, state), strict=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_threads_option(parser)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=15, help="steps of each learner a round")
    args = parser.parse_args()
    set_threads(args.threads)
    precision = resolve_precision(args.precision, "cpu")
    ids = np.random.default_rng(0).integers(0, 100, size=2_000_000).astype(np.uint8)
    batches = StreamBatches(ids, 64, 32)
    print(f"# Dropout from random bits against torch's\n\n{machine()}; {precision}; bs 64 x bptt 32, emb 64, "
          f"vocab 100, AdamW; best of {args.rounds} rounds of {args.steps} steps\n")
    rows = []
    for layers, hidden, p, weight_p in CASES:
        learners, states, best = {}, {}, {}
        for name in ("torch", "bits"):
            torch.manual_seed(0)
            model = RecurrentLM(100, ModelConfig(cell="lstm", layers=layers, emb=64, hidden=hidden, dropout=p,
                                                 weight_dropout=weight_p, tie=False))
            if name == "torch":
                model.drop = TorchDropout(p)
                model._recur = types.MethodType(torch_recur, model)
            learners[name], states[name], best[name] = Learner(model, batches, None, lr=3e-3, precision=precision), \
                None, float("inf")
        for round_ in range(args.rounds + 1):  # the first warms up
            for name, learner in learners.items():
                started = time.perf_counter()
                for k in range(args.steps):
                    x, y = batches.batch(round_ * args.steps + k)
                    loss, states[name] = learner.train_step(x, y, states[name])
                loss.item()
                if round_:
                    best[name] = min(best[name], (time.perf_counter() - started) / args.steps)
        rows.append([f"lstm {layers}x{hidden}", f"{p:g}", f"{weight_p:g}", f"{best['torch'] * 1e3:.1f}",
                     f"{best['bits'] * 1e3:.1f}", f"{best['torch'] / best['bits']:.2f}x"])
    print(table(["model", "dropout", "weight dropout", "torch's ms/step", "bits ms/step", "steps a second"], rows))


if __name__ == "__main__":
    main()
