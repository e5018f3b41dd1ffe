"""Running a server: ``serve`` loads the models, binds the socket, runs uvicorn over the app
until a signal, then stops.

On SIGINT or SIGTERM the workers end their streams in flight at once (so open streams finish
within a step), then uvicorn closes the connections and ``serve`` returns, so the process exits
with status 0 (uvicorn would re-raise the signal, which Python turns into exit status 130 or
death by SIGTERM)."""

from __future__ import annotations

import asyncio
import gc
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
from rnnlm.serve.guard import ConnectionLimit
from rnnlm.serve.models import ServedModel, load_models
from rnnlm.serve.options import ServeOptions
from rnnlm.serve.service import Service

MAX_PORT = 65535
# Seconds a thread may hold the GIL while another waits (Python's default: 0.005). The model's
# worker gives the GIL up in every torch kernel and then waits for the event loop to give it back;
# a short interval keeps it from waiting a whole default interval every step (benchmarks/README.md,
# "The GIL", measures the difference).
SWITCH_INTERVAL = 0.0005
# File descriptors kept for the server's own use beyond its connections: the listening socket,
# the event loop's, logs, the page's files and metrics.jsonl as they are read (16 are open idle).
FILES_RESERVED = 64
OPEN_FILES_WANTED = 65_536  # the soft limit asked for where the hard limit is unlimited
OPEN_FILES_CAPPED = 10_240  # and where that is refused (macOS's usual cap per process)


@dataclass(frozen=True)
class Listening:
    """What a server serves and where, once its socket is bound and before it runs."""

    models: list[ServedModel]
    url: str
    api_key_required: bool
    max_connections: int | None  # None: no limit of rnnlm's own (no open-files limit to size it by)


def serve(runs: Sequence[str | os.PathLike], options: ServeOptions, host: str = "127.0.0.1", port: int = 8000,
          device: str = "auto", ready: Callable[[Listening], None] = lambda listening: None) -> None:
    """Serve the run folders ``runs`` name (each a run, or a folder of runs) on ``host``:``port``
    (0: any free port) until SIGINT or SIGTERM; ``ready`` hears where, before the first request.
    Sets this process's thread switch interval (``SWITCH_INTERVAL``), raises its open-files
    limit (``connection_limit``) and freezes what start-up made (``freeze_start_up``)."""
    if not 0 <= port <= MAX_PORT:
        raise invalid("port", f"must be in 0..{MAX_PORT} (got {port})")
    sys.setswitchinterval(SWITCH_INTERVAL)
    models = load_models(runs, device=device)
    sock = bind(host, port)
    service = Service(models, options)
    most = connection_limit()
    # the server's connections, as uvicorn holds them once the server below is made
    connections = None if most is None else ConnectionLimit(
        most, lambda: len(server.server_state.connections), lambda: {c.client for c in server.server_state.connections})
    server = Server(uvicorn_config(create_app(service, connections)), service)
    ready(Listening(list(models.values()), address_url(sock), options.api_key is not None, most))
    freeze_start_up()
    server.run(sockets=[sock])
    if server.started_failed:
        raise RnnlmError("the server failed to start")


def freeze_start_up() -> None:
    """Move every object made so far (torch, FastAPI, the models: hundreds of thousands) out of
    the cyclic garbage collector's reach (``gc.freeze``): they live as long as the process, and
    otherwise each full collection walks them all, on the event loop and holding the GIL (which
    the model's worker then waits for), while the requests' short-lived objects trigger one every
    few hundred requests."""
    gc.collect()
    gc.freeze()


def uvicorn_config(app: FastAPI) -> uvicorn.Config:
    """uvicorn's settings: quiet (rnnlm has its own metrics), and no connection limit of its own
    (uvicorn would answer a plain-text 503 beyond it, before the app): the app's guard holds the
    limit on connections, sized by the open-files limit (idle keep-alive connections count), and
    each model's worker decides which requests run, wait or are refused with a reason."""
    return uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                          limit_concurrency=None, timeout_keep_alive=30, loop="auto", http="auto", lifespan="on")


def connection_limit() -> int | None:
    """The most connections this process serves: its open-files limit less FILES_RESERVED,
    after raising the soft limit to the hard one (as Go's runtime does at start; a shell's
    ``ulimit -n`` is often 1,024 where the hard limit is far higher). None where there is no
    such limit to read (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else hard
    for asked in (wanted, OPEN_FILES_CAPPED):  # macOS caps the soft limit below an unlimited hard one
        if soft == resource.RLIM_INFINITY or soft >= asked:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (asked, hard))
            soft = asked
            break
        except (ValueError, OSError):
            continue
    return max(1, (OPEN_FILES_WANTED if soft == resource.RLIM_INFINITY else soft) - FILES_RESERVED)


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
