"""``rnnlm score``: how surprised a trained model is by each token of a text, and what its hidden
units do there."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rnnlm.cli.options import add_command, add_device_option, add_encoding_options, add_threads_option
from rnnlm.cli.output import one_line

if TYPE_CHECKING:  # imported by the command itself (--help imports no torch)
    from rnnlm.inspect.feature import FeatureRanking
    from rnnlm.inspect.score import Scoring

EPILOG = """\
examples:
  rnnlm score runs/demo --text "one , two , three , four"
  rnnlm score RUN book.txt --html book.html              every character coloured by its surprisal
  rnnlm score RUN book.txt --html book.html --unit 37    coloured by unit 37 of the last layer
  rnnlm score RUN book.txt --feature '"[^"]*"'           which units track being inside quotes
  rnnlm score RUN book.txt --json | jq '.tokens[:3]'

The model predicts each token from the ones before it, the state carried through the whole
text; the first character (at word level: xxbos, which starts the text) is not predicted.
The totals equal those of rnnlm evaluate RUN FILE --streams 1."""

UNIT_ROWS = 10  # units the --feature table shows
CONTEXT = 24  # characters shown either side of a surprising span
SPAN_WIDTH = 40  # characters of a surprising span shown at most


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "score", help="per-token surprisal of a text, hidden units, feature detectors",
                    description="Score a text with a trained model: total nats, bits per character, "
                                "perplexity and the most surprising spans; every token as JSON; an HTML "
                                "page coloured by surprisal or by a hidden unit; the units that track a "
                                "feature of the text.", epilog=EPILOG)
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("file", nargs="?", default=None, metavar="FILE", help="the text to score (- reads stdin)")
    p.add_argument("--text", default=None, help="the text to score, given on the command line instead of FILE")
    p.add_argument("--top", type=int, default=5, metavar="K", help="alternatives kept for each token")
    p.add_argument("--spans", type=int, default=5, metavar="N", help="most surprising spans printed")
    p.add_argument("--json", action="store_true", help="print every token with its log-probability and "
                                                       "alternatives as one JSON object")
    p.add_argument("--html", default=None, metavar="OUT", help="write a self-contained HTML page: every character "
                                                               "coloured, its top predictions on hover")
    p.add_argument("--unit", type=int, default=None, metavar="N",
                   help="trace hidden unit N (0-based; an LSTM's cell state, else the hidden state) and colour "
                        "the page by it")
    p.add_argument("--layer", type=int, default=None, metavar="L",
                   help="the layer of --unit and --feature, 1 (the bottom) .. layers (default: the last)")
    p.add_argument("--feature", default=None, metavar="REGEX",
                   help="mark what REGEX matches and rank every unit of the layer by how well it separates "
                        "marked from unmarked characters (AUC)")
    add_encoding_options(p, None, None)
    add_device_option(p)
    add_threads_option(p)
    p.set_defaults(func=run)


def check_arguments(args: argparse.Namespace) -> None:
    """Mistakes found before the model is loaded."""
    from rnnlm.atomic import check_writable
    from rnnlm.errors import RnnlmError
    from rnnlm.inspect.feature import compile_feature
    from rnnlm.inspect.score import check_top, trace_choice

    if (args.file is None) == (args.text is None):
        raise RnnlmError("give the text to score as FILE or as --text TEXT" if args.file is None else
                         "give FILE or --text, not both")
    check_top(args.top)
    if not 0 <= args.spans <= 1000:
        raise RnnlmError(f"--spans must be in 0..1000 (got {args.spans})")
    trace_choice(args.layer, args.unit, args.feature is not None)
    if args.feature is not None:
        compile_feature(args.feature)
    if args.html is not None:
        check_writable(args.html, "html")


def run(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from rnnlm.inspect.document import document, write_document
    from rnnlm.inspect.feature import rank_units
    from rnnlm.inspect.page import check_page, write_page
    from rnnlm.inspect.score import UnitChoice, check_top, read_score_text, resolve_units, score_text, trace_choice
    from rnnlm.runfolder import load_run

    check_arguments(args)
    trained = load_run(args.run, device=args.device)
    check_top(args.top, len(trained.vocab))
    choice = trace_choice(args.layer, args.unit, args.feature is not None)
    if choice is not None:
        resolve_units(trained, UnitChoice(args.layer, args.unit))
    traced = len(resolve_units(trained, choice)[1]) if choice else 0
    if args.file is not None:
        settings = replace(trained.config.data, encoding=args.encoding or trained.config.data.encoding,
                           errors=args.errors or trained.config.data.errors)
        settings.validate()
        text = read_score_text(args.file, settings.encoding, settings.errors, args.top, traced)
    else:
        text = args.text
    if args.html is not None:
        check_page(args.html, len(text))
    scoring = score_text(trained, text, args.top, choice, progress=sys.stderr.isatty())
    if scoring.unknown:
        print(f"warning: {scoring.unknown:,} token(s) of the text are not in the vocab; read as xxunk",
              file=sys.stderr)
    ranking = rank_units(scoring, args.feature) if args.feature is not None else None
    if args.html is not None:
        write_page(args.html, document(scoring, ranking, args.unit))
    if args.json:
        write_document(sys.stdout, scoring, ranking, args.unit)
    else:
        print_summary(scoring, args.spans)
        if args.unit is not None:
            print_unit(scoring, args.unit)
        if ranking is not None:
            print_ranking(ranking, scoring.level)
    if args.html is not None:
        print(f"wrote {args.html}", file=sys.stderr if args.json else sys.stdout)


def print_summary(scoring: Scoring, spans: int) -> None:
    per = "char" if scoring.level == "char" else "token"
    first = "the first has nothing before it" if scoring.level == "char" else "xxbos starts the text"
    print(f"run         {scoring.run} ({scoring.level} level)")
    print(f"characters  {len(scoring.text):,}")
    print(f"tokens      {scoring.token_count:,} ({scoring.predicted:,} predicted; {first})")
    print(f"total       {scoring.total_nats:,.2f} nats")
    print(f"loss        {scoring.loss:.4f} nats/{per}")
    print(f"perplexity  {scoring.perplexity:.4f}")
    print(f"bits/char   {scoring.bits_per_char:.4f}")
    found = scoring.surprising_spans(spans) if spans else []
    if not found:
        return
    print("\nmost surprising spans (nats; the span in [brackets]; what the model expected instead):")
    itos = scoring.shown_tokens
    for span in found:
        inside = scoring.text[span.start : span.end]
        inside = inside if len(inside) <= SPAN_WIDTH else inside[: SPAN_WIDTH - 3] + "..."
        before = scoring.text[max(0, span.start - CONTEXT) : span.start]
        after = scoring.text[span.end : span.end + CONTEXT]
        expected = itos[int(scoring.top_ids[span.first, 0])] if scoring.top_ids.shape[1] and span.first else None
        hint = f"  expected {one_line(repr(expected))}" if expected is not None else ""
        print(f"  {span.nats:7.2f}  {one_line(before)}[{one_line(inside)}]{one_line(after)}{hint}")


def print_unit(scoring: Scoring, unit: int) -> None:
    trace = scoring.trace
    values = trace.of(unit)
    low, high = int(values.argmin()), int(values.argmax())

    def at(i: int) -> str:
        start = int(scoring.starts[i])
        before = scoring.text[max(0, start - CONTEXT) : start]
        return f"{one_line(before)}[{one_line(scoring.token_text(i))}]"

    print(f"\nunit {unit} (layer {trace.layer} of {trace.layers}, {trace.kind}): mean {values.mean():.3f}, "
          f"min {values[low]:.3f}, max {values[high]:.3f}")
    print(f"  lowest after   {at(low)}")
    print(f"  highest after  {at(high)}")


def print_ranking(ranking: FeatureRanking, level: str) -> None:
    what = "characters" if level == "char" else "tokens"
    print(f"\nunits of layer {ranking.layer} ({ranking.kind}) that separate what {one_line(ranking.pattern)} matches "
          f"({ranking.marked:,} of {ranking.tokens:,} {what}), best first:")
    print(f"  {'rank':>4}  {'unit':>5}  {'AUC':>6}  {'r':>7}  {'inside':>8}  {'outside':>8}")
    for rank, u in enumerate(ranking.units[:UNIT_ROWS], 1):
        print(f"  {rank:>4}  {u.unit:>5}  {u.auc:6.4f}  {u.r:7.4f}  {u.mean_marked:8.3f}  {u.mean_unmarked:8.3f}")
