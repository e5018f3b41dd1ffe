"""``rnnlm novelty``: how much of a text is copied from a run's training text."""

from __future__ import annotations

import argparse
import json
import sys

from rnnlm.cli.options import add_command, add_encoding_options


def sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not whole numbers separated by commas: {text!r}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "novelty", help="how much of a text is copied from the training text",
                    description="The longest substring of a text that occurs in the run's training text\n"
                                "(its training split, read as the run read it), and the share of the text's\n"
                                "n-grams that occur there: 10, 20 and 50 characters at character level,\n"
                                "3, 5 and 8 words at word level. One pass over the training text, in memory\n"
                                "that does not grow with it. For a run on a list (--lines, --doc-sep), the\n"
                                "text is a list read the same way, and each item is judged: new, in training\n"
                                "or in validation as a whole, and its longest span copied from one training item.")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("text", nargs="?", default="-", metavar="TEXT_FILE",
                   help="the text to check; - or nothing: read it from stdin")
    p.add_argument("--ngrams", type=sizes, default=None, metavar="N,N,...",
                   help="n-gram sizes, in characters or words (default: 10,20,50 or 3,5,8)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_encoding_options(p, None, None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from rnnlm.data.corpus import read_text_input
    from rnnlm.errors import RnnlmError
    from rnnlm.inspect.novelty import MAX_TEXT_BYTES, check_sizes, novelty, run_data
    from rnnlm.inspect.trainingtext import training_text

    folder, data = run_data(args.run)
    reading = replace(data, encoding=args.encoding or data.encoding, errors=args.errors or data.errors)
    reading.validate()
    training = training_text(data, run=folder)
    check_sizes(args.ngrams, training.level)  # before a long read
    if args.text == "-" and (sys.stdin is None or sys.stdin.isatty()):
        raise RnnlmError("no text: name a text file, or pipe the text into stdin")
    name = "<stdin>" if args.text == "-" else args.text

    def too_large(where: str, size: int | None) -> RnnlmError:
        limit = f"too large for a text to check (at most {MAX_TEXT_BYTES:,} bytes; novelty holds it in memory)"
        return RnnlmError(f"{name}: {limit}" if size is None else f"{name}: {size:,} bytes, {limit}")

    text = read_text_input(args.text, reading.encoding, reading.errors, MAX_TEXT_BYTES, too_large)
    if data.documents:
        return item_novelty(args, folder, training, text, name)
    report = novelty(text, training, ns=args.ngrams, name=name)
    if args.json:
        print(json.dumps({"run": str(folder), "text_file": name, **report.as_dict()}))
        return
    print(f"novelty of {name} against the training text of {folder}")
    print(report.summary())


def item_novelty(args: argparse.Namespace, folder, training, text: str, name: str) -> None:
    """A run on a list: the text's items, each judged whole and searched for copied spans."""
    from collections import Counter

    from rnnlm.cli.output import for_terminal
    from rnnlm.data.documents import split_items
    from rnnlm.data.items import VERDICTS
    from rnnlm.errors import shown
    from rnnlm.inspect.novelty import judge_items, run_data, scan

    data = run_data(folder)[1]
    items = split_items([(name, text)], data.lines, data.doc_sep)
    reports = judge_items(folder, items, scan(training, items, args.ngrams))
    if args.json:
        print(json.dumps({"run": str(folder), "text_file": name,
                          "items": [{"text": item, **r.as_dict()} for item, r in zip(items, reports)]}))
        return
    print(f"novelty of the items of {name} against the training items of {folder}")
    for item, r in zip(items, reports):
        copied = "whole item" if r.verdict != "new" else (
            f"longest copied {r.longest.length if r.longest else 0} of {r.unit(r.length)}")
        print(f"{r.verdict or '-':<14} {copied:<36} {for_terminal(shown(item, 200))}")
    counts = Counter(r.verdict for r in reports)
    print(f"{len(items)} item{'s' if len(items) != 1 else ''}: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS))
