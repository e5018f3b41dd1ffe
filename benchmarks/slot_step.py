"""The step of streams in slots, in C against TorchScript, and prompts read in C against torch.

A server steps its streams together from slots' buffers (``rnnlm.generation.slots``): by the C
kernel (``NativeSlotStep``: each stream summed as it is alone) where it builds, else by one
TorchScript call (``SlotStep``). Both are timed here on the same buffers of N streams, their
calls alternating, each keeping its fastest of several rounds; then prompts of T tokens, G at a
time, read by the C kernel layer by layer against torch's recurrent kernels (``read_prompts``).

    .venv/bin/python benchmarks/slot_step.py --threads 1          # runs/demo (make demo)
    .venv/bin/python benchmarks/slot_step.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import add_threads_option, machine, set_threads, table  # noqa: E402
from rnnlm.generation.batched_step import BatchedStep  # noqa: E402
from rnnlm.generation.native_slot_step import NativeSlotStep  # noqa: E402
from rnnlm.generation.prompt import read_prompts  # noqa: E402
from rnnlm.generation.session import GenerationSession  # noqa: E402
from rnnlm.generation.slot_step import slot_step  # noqa: E402


def fastest(calls: dict[str, callable], repeat: int, rounds: int = 5) -> dict[str, float]:
    """Seconds a call of each, the fastest mean of ``repeat`` calls over ``rounds``, in turn."""
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(repeat):
                call()
            best[name] = min(best[name], (time.perf_counter() - started) / repeat)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo", help="run folder (default: runs/demo, make demo)")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    session = GenerationSession.load(args.run, device="cpu")
    native = session.single_step().native
    if native is None:
        raise SystemExit("no C kernel here: nothing to compare")
    layers, hidden, vocab = native.layers, native.hidden, native.vocab
    print(f"# The slots' step, C against TorchScript\n\n{machine()}; {args.run} ({native.cell} {layers}x{hidden}, "
          f"vocab {vocab}); load average {os.getloadavg()[0]:.1f}\n")
    rows = []
    with torch.inference_mode():
        for n in (1, 2, 8, 32, 128):
            state = [torch.randn(layers, n, hidden) * 0.5 for _ in range(2 if native.cell == "lstm" else 1)]
            logits = torch.randn(n, vocab)
            in_c = NativeSlotStep(native, session.ban_bias, [s.clone() for s in state], logits.clone())
            scripted = slot_step(BatchedStep(session.model), session.banned, [s.clone() for s in state], logits.clone())
            temperatures, uniforms = [0.8] * n, [0.5] * n
            took = fastest({"C": lambda: in_c(n, n, temperatures, uniforms),
                            "TorchScript": lambda: scripted(n, n, temperatures, uniforms)}, repeat=max(10, 400 // n))
            flops = 2 * n * sum(p.numel() for p in native.params[1:])  # the padded blocks, the table's rows among them
            rows.append([n, f"{took['C'] * 1e3:.3f}", f"{took['TorchScript'] * 1e3:.3f}",
                         f"{took['TorchScript'] / took['C']:.2f}x", f"{flops / took['C'] / 1e9:.0f}"])
    print(table(["streams", "C ms/step", "TorchScript ms/step", "C speed-up", "C GFLOP/s (upper bound)"], rows))
    rng, rows = np.random.default_rng(0), []
    for tokens, group in ((4, 1), (4, 8), (64, 1), (256, 1), (256, 8)):
        def reading(use):
            readings = [session.begin_prompt(rng.integers(4, vocab, size=tokens).tolist()) for _ in range(group)]
            return lambda: read_prompts(session.model, readings, tokens, use)

        took = fastest({"C": lambda: reading(native)(), "torch": lambda: reading(None)()}, repeat=3)
        rows.append([tokens, group, f"{took['C'] * 1e3:.2f}", f"{took['torch'] * 1e3:.2f}",
                     f"{took['torch'] / took['C']:.2f}x"])
    print("\n" + table(["prompt tokens", "prompts", "C ms", "torch ms", "C speed-up"], rows))


if __name__ == "__main__":
    main()
