"""``rnnlm serve``: an OpenAI-compatible HTTP server with continuous batching and a web page."""

from __future__ import annotations

import argparse
import os
import sys

from rnnlm.cli.options import add_command, add_device_option, add_threads_option

API_KEY_VARIABLE = "RNNLM_API_KEY"
# Seconds a thread may hold the GIL while another waits (Python's default: 0.005). The model's
# worker gives the GIL up in every torch kernel and then waits for the event loop to give it back;
# 0.5 ms keeps it from waiting 5 ms a step (2x the tokens/s of 32 clients, benchmarks/README.md).
SWITCH_INTERVAL = 0.0005


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from rnnlm.errors import RnnlmError

    for name in ("max_streams", "queue", "max_tokens", "max_prompt"):
        value = getattr(args, name)
        if value < (0 if name == "queue" else 1):
            raise RnnlmError(f"--{name.replace('_', '-')} must be >= {0 if name == 'queue' else 1} (got {value})")
    from rnnlm.generation.session import MAX_TOKENS

    if args.max_tokens > MAX_TOKENS:
        raise RnnlmError(f"--max-tokens must be <= {MAX_TOKENS:,} (got {args.max_tokens})")
    if not 0 <= args.port <= 65535:
        raise RnnlmError(f"--port must be in 0..65535 (got {args.port})")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_VARIABLE) or None
    if api_key is not None and (not api_key.strip() or not api_key.isprintable() or " " in api_key):
        raise RnnlmError("--api-key must be printable characters without spaces")

    import uvicorn

    from rnnlm.serve.app import ServeOptions, create_app
    from rnnlm.serve.models import load_models
    from rnnlm.serve.server import Server, bind

    sys.setswitchinterval(SWITCH_INTERVAL)
    models = load_models(args.runs, device=args.device)
    options = ServeOptions(args.max_streams, args.queue, args.max_tokens, args.max_prompt, api_key=api_key,
                           cors=tuple(args.cors))
    sock = bind(args.host, args.port)
    app = create_app(models, options)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                            limit_concurrency=4 * args.max_streams + args.queue + 64, timeout_keep_alive=30,
                            loop="auto", http="auto", lifespan="on")
    server = Server(config, app.state.service)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    print(f"rnnlm serve: {len(models)} model{'s' if len(models) != 1 else ''}: "
          + ", ".join(f"{m.id} ({m.session.run.tokenizer.level}, {m.session.run.config.model.cell})"
                      for m in models.values()), flush=True)
    print(f"rnnlm serve: listening on http://{shown_host}:{port}/ (API: /v1, docs: /docs"
          + (", API key required" if api_key else "") + "); Ctrl-C stops", flush=True)
    server.run(sockets=[sock])
    if server.started_failed:
        raise RnnlmError("the server failed to start")
    print("rnnlm serve: stopped", flush=True)
