"""Running a server: ``serve`` loads the models, binds the socket, runs uvicorn over the app
until a signal, then stops.

On SIGINT or SIGTERM the workers end their streams in flight at once (so open streams finish
within a step), then uvicorn closes the connections and ``serve`` returns, so the process exits
with status 0 (uvicorn would re-raise the signal, which Python turns into exit status 130 or
death by SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from rnnlm.errors import RnnlmError, SettingError, invalid, literal
from rnnlm.serve.app import create_app
from rnnlm.serve.models import ServedModel, load_models
from rnnlm.serve.options import ServeOptions
from rnnlm.serve.service import Service

MAX_PORT = 65535
# Seconds a thread may hold the GIL while another waits (Python's default: 0.005). The model's
# worker gives the GIL up in every torch kernel and then waits for the event loop to give it back;
# a short interval keeps it from waiting a whole default interval every step (benchmarks/README.md,
# "The GIL", measures the difference).
SWITCH_INTERVAL = 0.0005


@dataclass(frozen=True)
class Listening:
    """What a server serves and where, once its socket is bound and before it runs."""

    models: list[ServedModel]
    url: str
    api_key_required: bool


def serve(runs: Sequence[str | os.PathLike], options: ServeOptions, host: str = "127.0.0.1", port: int = 8000,
          device: str = "auto", ready: Callable[[Listening], None] = lambda listening: None) -> None:
    """Serve the run folders ``runs`` name (each a run, or a folder of runs) on ``host``:``port``
    (0: any free port) until SIGINT or SIGTERM; ``ready`` hears where, before the first request.
    Sets this process's thread switch interval (``SWITCH_INTERVAL``)."""
    if not 0 <= port <= MAX_PORT:
        raise invalid("port", f"must be in 0..{MAX_PORT} (got {port})")
    sys.setswitchinterval(SWITCH_INTERVAL)
    models = load_models(runs, device=device)
    sock = bind(host, port)
    service = Service(models, options)
    server = Server(uvicorn_config(create_app(service), options), service)
    ready(Listening(list(models.values()), address_url(sock), options.api_key is not None))
    server.run(sockets=[sock])
    if server.started_failed:
        raise RnnlmError("the server failed to start")


def uvicorn_config(app: FastAPI, options: ServeOptions) -> uvicorn.Config:
    """uvicorn's settings: quiet (rnnlm has its own metrics), and a connection limit (uvicorn
    answers 503 beyond it) well above what the workers admit (``max_streams`` running and
    ``queue`` waiting per model), so that the batcher, which says why and when to come back,
    is what turns requests away; the 64 leave room for /health, /metrics and the page."""
    return uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                          limit_concurrency=4 * options.max_streams + options.queue + 64, timeout_keep_alive=30,
                          loop="auto", http="auto", lifespan="on")


class Server(uvicorn.Server):
    """uvicorn, told how rnnlm stops (see the module's docstring)."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service
        self.started_failed = False

    def handle_exit(self, sig: int, frame) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
        self.service.closing = True
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.call_soon_threadsafe(self.service.close)
        else:
            self.service.close()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)
        if not self.started:
            self.started_failed = True


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the models' workers start (a port in use is one line)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (socket.gaierror, UnicodeError) as e:
        sock.close()
        reason = f"{literal(repr(host))}: not an address this machine has ({literal(e)})"
        raise SettingError("host", f"{{host}} {reason}") from None
    except OSError as e:
        sock.close()
        raise RnnlmError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def address_url(sock: socket.socket) -> str:
    """The URL of the address ``sock`` listens on (an IPv6 address in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
