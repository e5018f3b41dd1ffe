"""uvicorn, told how rnnlm stops: on SIGINT or SIGTERM the workers end their streams in flight
at once (so open streams finish within a step), then uvicorn closes the connections and the
process exits with status 0 (uvicorn would re-raise the signal, which Python turns into exit
status 130 or death by SIGTERM)."""

from __future__ import annotations

import signal
import socket

import uvicorn

from rnnlm.errors import RnnlmError


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service) -> None:
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

    async def serve(self, sockets=None) -> None:
        import asyncio

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
        raise RnnlmError(f"--host {host!r}: not an address this machine has ({e})") from None
    except OSError as e:
        sock.close()
        raise RnnlmError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
