"""``rnnlm generate``: write text with a trained model, streaming tokens as they come."""

from __future__ import annotations

import argparse
import sys

from rnnlm.cli.options import add_command, add_device_option, add_threads_option
from rnnlm.cli.output import for_terminal


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "generate", help="write text with a trained model",
                    description="Sample text from a run, streaming tokens as they come.")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("-n", type=int, default=200, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="below 1: safer text, above 1: wilder")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="sample among the tokens holding this probability mass")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--seed", type=int, default=None, help="same seed, same text")
    p.add_argument("--samples", type=int, default=1, help="independent samples, generated as one batch")
    add_device_option(p)
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from rnnlm.generate import check_sampling, generate, generate_text
    from rnnlm.runfolder import load_run

    check_sampling(args.n, args.samples, args.temperature, args.top_k, args.top_p, args.seed)
    trained = load_run(args.run, device=args.device)
    options = dict(samples=args.samples, seed=args.seed, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, greedy=args.greedy)
    if args.samples == 1:
        separator = " " if trained.tokenizer.level == "word" else ""
        sys.stdout.write(for_terminal(args.prime))
        first = True
        for pieces in generate(trained.model, trained.tokenizer, trained.vocab, args.prime, args.n, **options):
            sys.stdout.write(for_terminal(("" if first and not args.prime else separator) + pieces[0]))
            sys.stdout.flush()
            first = False
        sys.stdout.write("\n")
        return
    texts = generate_text(trained.model, trained.tokenizer, trained.vocab, args.prime, args.n, **options)
    for i, text in enumerate(texts, 1):
        print(f"--- sample {i} ---\n{for_terminal(text)}")
