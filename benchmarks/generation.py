"""Generation speed: rnnlm's stateful sampling against the lessons' sliding window, same model.

Stateful (rnnlm.generation.session): the prime is read once, then every new character costs one step of
the network from the carried hidden state. Sliding window (the lessons' get_next_n): every new
character re-runs the model on the last n characters from a zero state and keeps the last
output. Both sample with the same rnnlm.generation.sampling.draw under torch.inference_mode, at batch 1. rnnlm
runs its steps on torch's own recurrent kernels (rnnlm.generation.prompt.one_step_kernels); the window
way is timed with those and with torch's default choice (oneDNN for an LSTM; the same kernels
for a GRU), and keeps the faster. All ways run in turn (A B C A B C ...) so that a busy spell of
a shared machine hits them alike; each keeps its fastest run. The weights are random: speed
does not depend on them. The window way runs fewer characters: its cost per character is
constant once the window is full, which the prime makes it from the start.

    python benchmarks/generation.py [--chars 2000] [--window-chars 200] [--windows 8,32,100]

--bound: instead, batch-1 generation against its floor, for the default model (what ``rnnlm
train`` builds with no model options), the 2x512 LSTM and the default's size as a GRU, on a
character vocab of 82 tokens.
The floor of one step is one pass of matrix-vector products over all of its weights (W_ih x and
W_hh h of every layer and the decoder's W h, each ``torch.addmv`` or ``torch.mv`` on contiguous
weights, whichever is faster; the embedding row lookup aside). rnnlm's loop is
``GenerationSession.complete`` at its default settings (temperature 1, no top-k or top-p), the
path of ``rnnlm generate``, with the step it takes at these threads ("step": "C", the native
kernel of ``rnnlm.generation.native_step`` on one thread; "torch" otherwise); "torch step" is
the same loop on the torch single-stream step and draw (``SingleStreamStep(native=False)``);
"general step" is the same stream through the batched step (a finished stream beside it), the
path every batch-1 token took before the single-stream step.
All run in turn (A B C A B C ...), each keeps its fastest run. Run it with --threads 1 and 2.

    python benchmarks/generation.py --bound [--chars 500] [--threads 1]
"""

from __future__ import annotations

import argparse
import random
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_option, best_times, machine, set_threads, table  # noqa: E402

import rnnlm.generation.session as session_module  # noqa: E402
from rnnlm.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from rnnlm.data.tokenizers import CharTokenizer  # noqa: E402
from rnnlm.data.vocab import Vocab  # noqa: E402
from rnnlm.generation.prompt import one_step_kernels  # noqa: E402
from rnnlm.models import RecurrentLM  # noqa: E402
from rnnlm.runfolder import Run  # noqa: E402
from rnnlm.generation.sampling import Sampling, draw  # noqa: E402
from rnnlm.generation.session import GenerationSession  # noqa: E402
from rnnlm.generation.single_stream_step import SingleStreamStep  # noqa: E402

ALPHABET = "\n !\"'(),-.:;?abcdefghijklmnopqrstuvwxyz0123456789_=[]"
PRIME = "for those who know the spirit of the age and the will to power, " * 4
MODELS = {  # the lessons' stateful LSTM and GRU on Nietzsche
    "lstm 2x512": ModelConfig(cell="lstm", layers=2, emb=42, hidden=512, dropout=0.5),
    "gru 1x256": ModelConfig(cell="gru", layers=1, emb=42, hidden=256, dropout=0.0),
}


BOUND_ALPHABET = ALPHABET + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # 82 tokens with the specials, about Nietzsche's
BOUND_MODELS = {
    "default (lstm 2x256, emb 128)": ModelConfig(),
    "lstm 2x512": MODELS["lstm 2x512"],
    "gru 2x256, emb 128": ModelConfig(cell="gru"),
}


def session_of(model, tokenizer, vocab) -> GenerationSession:
    config = RunConfig(DataConfig(), model.config, TrainConfig())
    return GenerationSession(Run(Path("."), "benchmark", config, vocab, tokenizer, model, torch.device("cpu")))


def stateful(model, tokenizer, vocab, n: int, samples: int = 1) -> int:
    """rnnlm's way (the generation session); returns the characters produced."""
    session = session_of(model, tokenizer, vocab)
    streams = session.start(PRIME[:8], n=samples, max_tokens=n, seed=0)
    return samples * sum(1 for _ in session.run_streams(streams))


@torch.inference_mode()
def sliding_window(model, tokenizer, vocab, n: int, window: int, kernels=nullcontext) -> int:
    """The lessons' way: the last ``window`` ids from a zero state, every character."""
    rng = random.Random(0)
    model.eval()
    ids = tokenizer.encode(PRIME[-window:], vocab).tolist()
    for _ in range(n):
        with kernels():
            logits, _ = model(torch.tensor([ids[-window:]]))
        ids.append(int(draw(logits[:, -1], [Sampling()], [rng.random()])))
    return n


def on_default_kernels(fn):
    """``fn`` with the session's one-step kernel switch turned off: what rnnlm did before it."""
    def run():
        session_module.one_step_kernels = nullcontext
        try:
            fn()
        finally:
            session_module.one_step_kernels = one_step_kernels
    return run


def with_threads(threads: int, fn):
    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            fn()
        finally:
            torch.set_num_threads(before)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=2000, help="characters generated statefully")
    parser.add_argument("--window-chars", type=int, default=200, help="characters generated by the window way")
    parser.add_argument("--windows", default="8,32,100", help="sliding window lengths")
    parser.add_argument("--samples", type=int, default=8, help="batch size of the batched stateful row")
    parser.add_argument("--seconds", type=float, default=2.0, help="least time spent on each way")
    parser.add_argument("--bound", action="store_true", help="batch-1 generation against the matrix-vector floor")
    add_threads_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    if args.bound:
        print(f"# Batch-1 generation against the matrix-vector floor (ms/token)\n\n{machine()}\n")
        print(bound_table(min(args.chars, 500), args.seconds))
        return
    windows = [int(w) for w in args.windows.split(",")]
    print(f"# Generation speed (characters/s)\n\n{machine()}\n")
    tokenizer = CharTokenizer()
    vocab = Vocab.build({c: 1 for c in ALPHABET})
    threads = torch.get_num_threads()
    rows = []
    for name, config in MODELS.items():
        torch.manual_seed(0)
        model = RecurrentLM(len(vocab), config).eval()
        ways = [(f"stateful (rnnlm), {threads} thread{'s' if threads > 1 else ''}", 1, args.chars,
                 lambda: stateful(model, tokenizer, vocab, args.chars))]
        if threads > 1:
            ways.append(("stateful (rnnlm), 1 thread", 1, args.chars,
                         with_threads(1, lambda: stateful(model, tokenizer, vocab, args.chars))))
        ways.append((f"stateful, {args.samples} samples", args.samples, args.chars,
                     lambda: stateful(model, tokenizer, vocab, args.chars, args.samples)))
        ways.append(("stateful, without one_step_kernels", 1, args.window_chars,
                     on_default_kernels(lambda: stateful(model, tokenizer, vocab, args.window_chars))))
        for w in windows:
            for kernels in (one_step_kernels, nullcontext):
                ways.append((f"sliding window n={w}", 1, args.window_chars,
                             lambda w=w, k=kernels: sliding_window(model, tokenizer, vocab, args.window_chars, w, k)))
        times = best_times([fn for *_, fn in ways], args.seconds)
        rates = [batch * chars / t for (_, batch, chars, _), t in zip(ways, times)]
        kernels = ["torch"] * (len(ways) - 1 - 2 * len(windows)) + ["default"] + ["torch", "default"] * len(windows)
        best: dict[str, tuple[float, list]] = {}
        for (way, batch, chars, _), rate, kernel in zip(ways, rates, kernels):
            if way not in best or rate > best[way][0]:
                best[way] = (rate, [name, way, kernel, batch, chars, f"{rate:,.0f}", f"{rates[0] / rate:.2f}x"])
        rows += [row for _, row in best.values()]
        print(f"  {name} done", file=sys.stderr, flush=True)
    print(table(["model", "way", "kernels", "batch", "chars", "chars/s", "stateful batch 1 / this"], rows))
    print("\nEach way ran in turn with the others (A B C A B C ...); the table keeps its fastest run. "
          "kernels: torch = torch's own recurrent kernels (rnnlm.generation.prompt.one_step_kernels), default = "
          "torch's choice (oneDNN for an LSTM on the CPU); the window way gets whichever was faster.\n")
    print(one_step_table(vocab, args.seconds))


def matvec_pass(model: RecurrentLM, steps: int, product) -> callable:
    """``steps`` passes of ``product`` (torch.mv or torch.addmv, out= a buffer made once) over
    every weight matrix of one step at batch 1: the floor of a step."""
    rnn = model.rnn
    names = [(f"weight_{kind}_l{i}", f"bias_{kind}_l{i}") for i in range(model.config.layers) for kind in ("ih", "hh")]
    matrices = [(getattr(rnn, w).detach().contiguous(), getattr(rnn, b).detach()) for w, b in names]
    matrices.append((model.head.weight.detach().contiguous(), model.head.bias.detach()))
    work = [(w, b, torch.randn(w.shape[1]), torch.empty(w.shape[0])) for w, b in matrices]  # (rows, cols) each

    @torch.inference_mode()
    def run() -> None:
        for _ in range(steps):
            for w, b, x, out in work:
                if product is torch.mv:
                    torch.mv(w, x, out=out)
                else:
                    torch.addmv(b, w, x, out=out)
    return run


def bound_table(tokens: int, seconds: float) -> str:
    """ms/token of the floor and of rnnlm's batch-1 loop, and their ratio (the floor's share)."""
    tokenizer, rows = CharTokenizer(), []
    vocab = Vocab.build({c: 1 for c in BOUND_ALPHABET})
    for name, config in BOUND_MODELS.items():
        torch.manual_seed(0)
        model = RecurrentLM(len(vocab), config).eval()
        session, torch_session = session_of(model, tokenizer, vocab), session_of(model, tokenizer, vocab)
        torch_session.single = SingleStreamStep(model, native=False)
        (done,) = session.start(PRIME[:8], max_tokens=0)

        def loop(on=session):
            for _ in on.complete(PRIME[:8], max_tokens=tokens, seed=0):
                pass

        def general():
            (stream,) = session.start(PRIME[:8], max_tokens=tokens, seed=0)
            for _ in session.run_streams([stream, done]):
                pass

        mv, addmv, ours, torch_loop, before = (t / tokens for t in best_times(
            [matvec_pass(model, tokens, torch.mv), matvec_pass(model, tokens, torch.addmv), loop,
             lambda: loop(torch_session), general], seconds))
        floor = min(mv, addmv)
        step = "C" if session.single_step().native is not None else "torch"
        rows.append([name, len(vocab), f"{1e3 * floor:.3f}", step, f"{1e3 * ours:.3f}", f"{floor / ours:.0%}",
                     f"{1e3 * torch_loop:.3f}", f"{floor / torch_loop:.0%}", f"{1e3 * before:.3f}",
                     f"{floor / before:.0%}"])
        print(f"  {name} done", file=sys.stderr, flush=True)
    return table(["model", "vocab", "floor ms/step", "step", "rnnlm ms/token", "floor / rnnlm",
                  "torch step ms/token", "floor / torch step", "general step ms/token", "floor / general"], rows)


@torch.inference_mode()
def one_step_table(vocab, seconds: float) -> str:
    """One step at batch 1 from a carried state, on torch's kernels and on torch's default choice."""
    rows = []
    for name, config in MODELS.items():
        torch.manual_seed(0)
        model = RecurrentLM(len(vocab), config).eval()
        token = torch.tensor([[3]])
        _, state = model(token)

        def on_torch_kernels():
            with one_step_kernels():
                model(token, state)

        torch_s, default_s = best_times([on_torch_kernels, lambda: model(token, state)], seconds)
        rows.append([name, f"{1e3 * torch_s:.3f}", f"{1e3 * default_s:.3f}", f"{default_s / torch_s:.1f}x"])
    return table(["model", "ms/step, torch kernels", "ms/step, default (oneDNN for lstm)", "ratio"], rows)


if __name__ == "__main__":
    main()
