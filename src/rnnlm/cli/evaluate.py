"""``rnnlm evaluate``: loss, perplexity, bits and accuracy of a trained model on text."""

from __future__ import annotations

import argparse

from rnnlm.cli.options import add_command, add_device_option, add_encoding_options, add_threads_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "evaluate", help="measure a trained model",
                    description="Loss (nats/token), perplexity, bits per token and per character of "
                                "the text (comparable across levels), next-token accuracy. A run on a list "
                                "(--lines, --doc-sep) reads each document alone, its end counted, and adds "
                                "nats per character and per document.")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("data", nargs="?", default=None, metavar="DATA",
                   help="text file, folder or built-in (default: the run's validation split)")
    p.add_argument("--streams", type=int, default=None, metavar="N",
                   help="parallel streams the text is cut into (default: as validation reads it, the run's --bs "
                        "streams, fewer for a short text, each warmed up on the tokens before it); 1 reads it as one "
                        "stream, no token dropped, as rnnlm score does (a list's documents: read as streams, "
                        "state carried from one document to the next, instead of each alone)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_device_option(p)
    add_encoding_options(p, None, None)
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from rnnlm.evaluation.runs import evaluate_run
    from rnnlm.runfolder import load_run

    trained = load_run(args.run, device=args.device)
    scores = evaluate_run(trained, args.data, args.encoding, args.errors, args.streams)
    if args.json:
        import json

        print(json.dumps(scores.as_dict()))
        return
    text = scores.text
    print(f"level       {trained.tokenizer.level}")
    if scores.documents is not None:
        print(f"documents   {scores.documents:,}, each read alone from where the model starts an item; its end "
              "counts as a token and a character")
    print(f"tokens      {scores.tokens:,} predicted")
    if text is not None:
        print(f"characters  {text.characters:,} ({text.characters / text.tokens:.3f} a token)")
    print(f"loss        {scores.loss:.4f} nats/token")
    print(f"perplexity  {scores.perplexity:.4f} (per token)")
    print(f"bits        {scores.bits:.4f} bits/token")
    if text is not None:
        print(f"            {scores.bits_per_char:.4f} bits/char")
    if scores.documents is not None and text is not None:
        print(f"per char    {scores.nats_per_char:.4f} nats/char (each end counted as one, as makemore counts it)")
    if scores.documents is not None:
        print(f"per item    {scores.loss_per_document:.4f} nats/document (mean)")
    print(f"accuracy    {scores.accuracy:.4f} (next token)")
