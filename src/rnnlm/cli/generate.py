"""``rnnlm generate``: write text with a trained model, streaming tokens as they come."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from rnnlm.cli.options import add_command, add_device_option, add_encoding_options, add_threads_option
from rnnlm.cli.output import for_terminal

if TYPE_CHECKING:  # imported by the command itself (--help imports no torch)
    from rnnlm.generation.session import GenerationSession
    from rnnlm.generation.stream import Stream


FIELDS = {"n": "samples", "max_tokens": "n"}  # the session's parameters -> this command's options
TOKENS = 200  # -n when not given
DOCUMENT_TOKENS = 1000  # -n when not given, for a run on a list's documents (each sample ends at its end)
BYTES_PER_PROMPT_BYTE = 16  # the bytes, the text (up to 4 a character) and its ids (8 each) at once
STDIN_LIMIT = 1 << 30  # bytes of a prime read from standard input, whose size is not known before


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "generate", help="write text with a trained model",
                    description="Sample text from a run, streaming tokens as they come. Each sample ends "
                                "after -n tokens or --max-chars characters (finish reason: length), at a "
                                "--stop string (stop; the string itself is not printed) or, at word level and "
                                "for a run on a list (--lines, --doc-sep), when the model ends the document "
                                "(end). A list's samples are whole items, each marked new, in training or in "
                                "validation.")
    p.add_argument("run", metavar="RUN", help="run folder")
    prime = p.add_mutually_exclusive_group()
    prime.add_argument("--prime", default="", help="text to start from (may hold newlines)")
    prime.add_argument("--prime-file", metavar="FILE", default=None,
                       help="read the text to start from from FILE (- for standard input), as training text is read")
    add_encoding_options(p, None, None)
    g = p.add_argument_group("length and stopping")
    g.add_argument("-n", type=int, default=None,
                   help=f"tokens to generate (at most; default {TOKENS}, for a list's items {DOCUMENT_TOKENS})")
    g.add_argument("--max-chars", type=int, default=None, metavar="N", help="end a sample at N characters")
    g.add_argument("--stop", action="append", default=[], metavar="STRING",
                   help="end a sample when its text contains STRING, which is not printed (repeatable)")
    g = p.add_argument_group("sampling")
    g.add_argument("--temperature", type=temperatures, default=[1.0], metavar="T[,T,...]",
                   help="below 1: safer text, above 1: wilder; several (0.5,0.8,1.2): --samples at each "
                        "(default: 1.0)")
    g.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    g.add_argument("--top-p", type=float, default=None, help="sample among the tokens holding this probability mass")
    g.add_argument("--greedy", action="store_true", help="always take the most likely token")
    g.add_argument("--seed", type=int, default=None,
                   help="same seed, same text (sample i of --samples draws with seed + i - 1)")
    g.add_argument("--samples", type=int, default=1, help="independent samples, generated as one batch")
    g.add_argument("--new-only", action="store_true",
                   help="a run on a list: keep drawing (at most 20 draws an item) until --samples distinct "
                        "new items, in neither the training nor the validation list, have come")
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true",
                   help="one JSON object per sample: text, finish_reason, tokens, prompt_tokens, seed")
    g.add_argument("--logprobs", type=int, default=None, metavar="K",
                   help="with --json: each token's log-probability and the K most likely alternatives")
    g.add_argument("--novelty", action="store_true",
                   help="after the samples, how much of each was copied from the run's training text "
                        "(as rnnlm novelty reports it)")
    add_device_option(p)
    add_threads_option(p)
    p.set_defaults(func=run, fields=FIELDS)


def temperatures(text: str) -> list[float]:
    """``--temperature``: one, or several separated by commas."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number, or numbers separated by commas: {text!r}") from None


def run(args: argparse.Namespace) -> None:
    from rnnlm.errors import RnnlmError
    from rnnlm.generation.sampling import Sampling
    from rnnlm.generation.session import GenerationSession, check_stream_options

    if args.logprobs is not None and not args.json:
        raise RnnlmError("--logprobs needs --json (the log-probabilities are part of the JSON output)")
    samplings = [Sampling(t, args.top_k, args.top_p, args.greedy) for t in args.temperature]
    for sampling in samplings:
        sampling.validate()
    check_stream_options(args.samples, TOKENS if args.n is None else args.n, args.stop, args.seed, args.logprobs,
                         args.max_chars)
    session = GenerationSession.load(args.run, device=args.device)
    documents = session.tokenizer.documents
    if args.new_only and not documents:
        raise RnnlmError(f"--new-only needs a run trained on a list (--lines or --doc-sep); {args.run} was not")
    if args.n is None:
        args.n = DOCUMENT_TOKENS if documents else TOKENS
    check_stream_options(args.samples, args.n, args.stop, args.seed, args.logprobs, args.max_chars)
    data = session.run.config.data
    prompt = args.prime if args.prime_file is None else read_prompt_file(
        args.prime_file, args.encoding or data.encoding, args.errors or data.errors)
    reading = session.read(prompt)
    if reading.unknown:
        print(f"warning: {reading.unknown} token(s) of the prime are not in the vocab; read as xxunk", file=sys.stderr)
    if documents:
        return write_documents(args, session, reading, samplings)
    for sampling in samplings:
        if len(samplings) > 1:
            print(f"--- temperature {sampling.temperature:g} ---")
        write_streams(args, session, reading, sampling, prompt)


def write_streams(args: argparse.Namespace, session: GenerationSession, reading, sampling, prompt: str) -> None:
    """The samples of one temperature, as text (streamed when there is one) or JSON."""
    streams = session.start(reading, n=args.samples, max_tokens=args.n, stop=args.stop, sampling=sampling,
                            seed=args.seed, logprobs=args.logprobs, max_chars=args.max_chars)
    if args.json:
        for _ in session.run_streams(streams):
            pass
        reports = novelty_reports(session, streams) if args.novelty else [None] * len(streams)
        for i, (stream, report) in enumerate(zip(streams, reports), 1):
            obj = stream_json(stream, prompt, i)
            if len(args.temperature) > 1:
                obj["temperature"] = sampling.temperature
            if report is not None:
                obj["novelty"] = report.as_dict()
            print(json.dumps(obj, ensure_ascii=False))
        return
    if len(streams) == 1:
        sys.stdout.write(for_terminal(prompt))
        for (piece,) in session.run_streams(streams):
            sys.stdout.write(for_terminal(piece.text))
            sys.stdout.flush()
        sys.stdout.write("\n")
    else:
        for _ in session.run_streams(streams):
            pass
        for i, stream in enumerate(streams, 1):
            print(f"--- sample {i} ---\n{for_terminal(prompt + stream.text)}")
    if args.novelty:
        for i, report in enumerate(novelty_reports(session, streams), 1):
            title = "novelty" if len(streams) == 1 else f"novelty of sample {i}"
            print(f"--- {title} (the text after the prime) ---\n{for_terminal(report.summary())}")


def write_documents(args: argparse.Namespace, session: GenerationSession, reading, samplings: list) -> None:
    """A list's samples: whole items, each with its verdict, and a summary line a temperature.
    Everything is drawn before anything is written (a --new-only that falls short writes nothing)."""
    from rnnlm.data.items import load_items
    from rnnlm.errors import RnnlmError
    from rnnlm.generation.documents import NotEnoughNew, draw_documents, seen_text

    record = load_items(session.run.folder)
    if record is None:
        print(f"warning: {args.run} keeps no record of its training items; no verdicts", file=sys.stderr)
    try:
        drawn = [draw_documents(session, reading, record, args.samples, new_only=args.new_only, seed=args.seed,
                                max_tokens=args.n, stop=args.stop, sampling=sampling, logprobs=args.logprobs,
                                max_chars=args.max_chars) for sampling in samplings]
    except NotEnoughNew as e:
        at = f" at --temperature {e.temperature:g}" if len(samplings) > 1 else ""
        raise RnnlmError(f"--new-only{at}: {e}") from None
    reports = [novelty_reports(session, [s.stream for s in d.samples]) if args.novelty else None for d in drawn]
    for sampling, batch, novelty in zip(samplings, drawn, reports):
        heading = f"temperature {sampling.temperature:g}: " if len(samplings) > 1 else ""
        tries = f" (in {batch.draws:,} draws: {seen_text(batch.seen, batch.draws)})" if args.new_only else ""
        if args.json:
            for i, sample in enumerate(batch.samples, 1):
                obj = {**stream_json(sample.stream, reading.text, i), "verdict": sample.verdict}
                if len(samplings) > 1:
                    obj["temperature"] = sampling.temperature
                if novelty is not None:
                    obj["novelty"] = novelty[i - 1].as_dict()
                print(json.dumps(obj, ensure_ascii=False))
            print(f"{heading}{batch.summary()}{tries}", file=sys.stderr)
            continue
        if len(samplings) > 1:
            print(f"--- temperature {sampling.temperature:g} ---")
        print_items(batch.samples, novelty)
        print(f"{batch.summary()}{tries}")


def print_items(samples: list, novelty: list | None) -> None:
    """One line an item, its verdict first; items of several lines (or with novelty) one block each."""
    blocks = novelty is not None or any("\n" in s.text for s in samples)
    for i, sample in enumerate(samples, 1):
        verdict = sample.verdict or "-"
        cut = "" if sample.stream.finish_reason == "end" else f" (cut: {sample.stream.finish_reason})"
        if not blocks:
            print(f"{verdict:<14} {for_terminal(sample.text)}{cut}")
            continue
        print(f"--- sample {i}: {verdict}{cut} ---\n{for_terminal(sample.text)}")
        if novelty is not None:
            print(for_terminal(novelty[i - 1].summary()))


def read_prompt_file(path: str, encoding: str, errors: str) -> str:
    """The prime in ``path`` (``-``: standard input), read as training text is; a file whose prime
    would not fit in memory (its bytes, its text and its ids at once) is refused before it is read."""
    import torch

    from rnnlm.config import check_encoding
    from rnnlm.data.corpus import STDIN, read_text_input
    from rnnlm.device import memory_bytes, memory_error
    from rnnlm.errors import RnnlmError

    def too_large(where: str, size: int | None) -> RnnlmError:
        if size is None:
            return RnnlmError(f"--prime-file -: more than {STDIN_LIMIT:,} bytes on standard input; save it to a file")
        return memory_error(BYTES_PER_PROMPT_BYTE * size, torch.device("cpu"), f"--prime-file {where} ({size:,} bytes)",
                            "use a shorter prime")

    check_encoding(encoding)
    limit = STDIN_LIMIT if path == STDIN else memory_bytes(torch.device("cpu")) // BYTES_PER_PROMPT_BYTE
    text = read_text_input(path, encoding, errors, limit, too_large)
    if not text:
        raise RnnlmError(f"--prime-file {path}: is empty")
    return text


def novelty_reports(session: GenerationSession, streams: list[Stream]) -> list:
    """How much of each stream's text (the prime left out) the run's training text holds."""
    from rnnlm.inspect.novelty import novelty_for_samples

    return novelty_for_samples(session.run, [s.text for s in streams])


def stream_json(stream: Stream, prompt: str, sample: int) -> dict:
    """A finished stream as the JSON object ``--json`` prints."""
    obj = {"sample": sample, "prompt": prompt, "text": stream.text, "finish_reason": stream.finish_reason,
           "tokens": stream.tokens, "prompt_tokens": stream.prompt_tokens, "seed": stream.seed}
    if stream.logprobs is not None:
        obj["logprobs"] = [{"token": r.token, "text": r.text, "logprob": r.logprob,
                            "top": [{"token": t, "logprob": lp} for t, lp in r.top]} for r in stream.records]
    return obj
