"""``rnnlm serve``: an OpenAI-compatible HTTP server with continuous batching and a web page."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from rnnlm.cli.options import add_command, add_device_option, add_threads_option

if TYPE_CHECKING:
    from rnnlm.serve.server import Listening

API_KEY_VARIABLE = "RNNLM_API_KEY"
FIELDS = {"max_prompt_chars": "max_prompt"}  # ServeOptions fields set by an option of another name


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "serve", help="serve models over HTTP (OpenAI-compatible API and a web page)",
                    description="Serve trained models over HTTP: OpenAI's /v1/completions (streamed or not), "
                                "/v1/models, /v1/score, /health, /metrics (Prometheus) and a playground page at /. "
                                "Concurrent requests are batched: one worker per model advances every active "
                                "stream by one token per step.",
                    epilog="Each model's id is its run folder's name. Ctrl-C or SIGTERM stops the server: streams "
                           "in flight end at once (finish reason length) and it exits with status 0.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run folder, or a folder of run folders")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0: every interface; set --api-key then)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port)")
    g = p.add_argument_group("limits")
    g.add_argument("--max-streams", type=int, default=128, metavar="N",
                   help="streams generated at once per model (a request takes n x prompts of them)")
    g.add_argument("--queue", type=int, default=256, metavar="N",
                   help="requests per model that may wait for a free stream; beyond that: 503 with Retry-After")
    g.add_argument("--max-tokens", type=int, default=4096, metavar="N", help="the largest max_tokens a request may ask")
    g.add_argument("--max-prompt", type=int, default=32_768, metavar="CHARS",
                   help="the longest prompt (and text to score), in characters")
    g = p.add_argument_group("security")
    g.add_argument("--api-key", default=None, metavar="KEY",
                   help=f"require Authorization: Bearer KEY on every endpoint but /health (default: ${API_KEY_VARIABLE})")
    g.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="let pages from ORIGIN (e.g. http://localhost:3000) call the API (repeatable; default: none)")
    add_device_option(p)
    add_threads_option(p)
    p.set_defaults(func=run, fields=FIELDS)


def run(args: argparse.Namespace) -> None:
    from rnnlm.serve.options import ServeOptions
    from rnnlm.serve.server import serve

    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_VARIABLE) or None
    options = ServeOptions(args.max_streams, args.queue, args.max_tokens, args.max_prompt, api_key=api_key,
                           cors=tuple(args.cors))
    serve(args.runs, options, args.host, args.port, device=args.device,
          ready=lambda listening: print_listening(listening, args.max_streams + args.queue))
    print("rnnlm serve: stopped", flush=True)


def print_listening(listening: Listening, requests_per_model: int) -> None:
    """Where it listens; a warning when the open-files limit leaves fewer connections than the
    requests the models may hold (running and waiting: ``requests_per_model`` each)."""
    models = listening.models
    print(f"rnnlm serve: {len(models)} model{'s' if len(models) != 1 else ''}: "
          + ", ".join(m.description for m in models), flush=True)
    print(f"rnnlm serve: listening on {listening.url} (API: /v1, docs: /docs"
          + (", API key required" if listening.api_key_required else "") + "); Ctrl-C stops", flush=True)
    held, most = len(models) * requests_per_model, listening.max_connections
    if most is not None and most < held:
        print(f"rnnlm serve: warning: the open-files limit allows {most:,} connections, fewer than the {held:,} "
              "requests --max-streams and --queue let the models hold; raise it (ulimit -n) or lower them",
              file=sys.stderr, flush=True)
