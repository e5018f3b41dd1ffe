"""``rnnlm prepare``: tokenize a large corpus to disk in bounded memory."""

from __future__ import annotations

import argparse

from rnnlm.cli.options import add_command, add_data_options, pick
from rnnlm.config import DataConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "prepare", help="tokenize a large corpus to disk",
                    description="Tokenize a corpus in bounded memory into a folder of token ids "
                                "(the smallest unsigned type that fits) and vocab.json; "
                                "`rnnlm train DIR` memory-maps it. The vocab and the split are "
                                "fixed here.")
    add_data_options(p, prepared=False)
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write (must be new or empty)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from rnnlm.data.prepare import prepare

    meta = prepare(DataConfig(**{**pick(args, DataConfig), "source": args.data}), args.out)
    tokens = meta["tokens"]
    print(f"prepared {meta['name']}: {meta['documents']:,} document(s), {meta['characters']:,} characters, "
          f"{meta['level']} level, vocab {meta['vocab_size']:,} tokens ({meta['dtype']})")
    print(f"train {tokens['train']:,} tokens, valid {tokens['valid']:,} tokens, in {meta['seconds']:.2f} s; "
          f"written to {args.out}")
    print(f"\nnext: rnnlm train {args.out}")
