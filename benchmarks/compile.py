"""Does torch.compile speed up rnnlm on the CPU? Training and one-step generation, eager
against compiled, same model, same run (compile time reported apart).

rnnlm has no --compile option: on the CPU this benchmark found no gain (benchmarks/README.md).

    python benchmarks/compile.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, best_times, machine, set_threads, table  # noqa: E402

from rnnlm.config import ModelConfig  # noqa: E402
from rnnlm.generation.prompt import one_step_kernels  # noqa: E402
from rnnlm.models import RecurrentLM  # noqa: E402

VOCAB = 60
CONFIGS = [("gru", 1, 64, 256, 64, 64), ("lstm", 1, 64, 256, 64, 64), ("lstm", 2, 128, 512, 32, 64)]


def train_step(model, optimizer, x, y):
    logits, _ = model(x)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"# torch.compile on the CPU\n\n{machine()}\n")
    rows = []
    for cell, layers, emb, hidden, bs, bptt in CONFIGS:
        torch.manual_seed(0)
        config = ModelConfig(cell=cell, layers=layers, emb=emb, hidden=hidden, dropout=0.1)
        x, y = torch.randint(0, VOCAB, (bs, bptt)), torch.randint(0, VOCAB, (bs, bptt))
        model = RecurrentLM(VOCAB, config)
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        compiled_model = torch.compile(model)
        start = time.perf_counter()
        train_step(compiled_model, optimizer, x, y)
        compile_s = time.perf_counter() - start
        eager, compiled = best_times([lambda: train_step(model, optimizer, x, y),
                                      lambda: train_step(compiled_model, optimizer, x, y)], args.seconds)
        name = f"{cell} {layers}x{hidden}"
        rows.append([name, f"train bs {bs} bptt {bptt}", f"{bs * bptt / eager:,.0f} tok/s",
                     f"{bs * bptt / compiled:,.0f} tok/s", f"{eager / compiled:.2f}x", f"{compile_s:.0f}"])

        model.eval()
        token = torch.randint(0, VOCAB, (1, 1))
        with torch.inference_mode():
            _, state = model(token)

            def step(m):
                with one_step_kernels():
                    m(token, state)

            start = time.perf_counter()
            step(compiled_model)
            compile_s = time.perf_counter() - start
            eager, compiled = best_times([lambda: step(model), lambda: step(compiled_model)], args.seconds)
        rows.append([name, "one generation step, batch 1", f"{1 / eager:,.0f} steps/s",
                     f"{1 / compiled:,.0f} steps/s", f"{eager / compiled:.2f}x", f"{compile_s:.0f}"])
        print(f"  {name} done", file=sys.stderr, flush=True)
    print(table(["model", "work", "eager", "compiled", "speed-up", "compile s"], rows))


if __name__ == "__main__":
    main()
