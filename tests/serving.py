"""Helpers of the server tests: ``rnnlm serve`` as a real process on a free loopback port, and
raw HTTP to it (http.client and sockets: nothing here can reach beyond 127.0.0.1)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTUP_TIMEOUT = 90.0  # seconds: importing torch and FastAPI on a busy 2-core machine
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")


class ServerProcess:
    """``python -m rnnlm serve ARGS --port 0`` until ``stop``; ``port`` is the one it chose.
    Its stderr (the server's log) goes to a file that ``log`` reads at any time; ``open_files``
    sets its open-files limit (soft and hard, as ``ulimit -n`` does)."""

    def __init__(self, *args: str, env: dict | None = None, open_files: int | None = None):
        command = [sys.executable, "-m", "rnnlm", "serve", *args, "--port", "0", "--device", "cpu"]
        if open_files is not None:  # the shell sets the limit, then becomes the server (same process)
            command = ["/bin/sh", "-c", f'ulimit -n {int(open_files)} && exec "$0" "$@"', *command]
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.lines: list[str] = []
        deadline = time.monotonic() + STARTUP_TIMEOUT
        self.port = None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            found = LISTENING.search(line)
            if found:
                self.port = int(found.group(1))
                break
        if self.port is None:
            self.process.kill()
            out, _ = self.process.communicate(timeout=10)
            raise AssertionError(f"the server did not start: {''.join(self.lines)}{out}{self.log()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What the server wrote to stderr so far (read without moving the file's offset)."""
        fd = self.stderr.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def signal(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, str, str]:
        """Send ``sig``; the exit status, the rest of stdout and the whole of stderr."""
        self.process.send_signal(sig)
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, self.log()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)
        self.stderr.close()


def request(port: int, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None,
            timeout: float = 60.0) -> tuple[int, dict, bytes]:
    """One request; (status, headers with lower-case names, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    heads = {"Content-Type": "application/json", **(headers or {})}
    try:
        conn.request(method, path, body=data, headers=heads)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def post(port: int, path: str, body, **kw) -> tuple[int, dict]:
    status, _, data = request(port, "POST", path, body, **kw)
    return status, json.loads(data)


def get_json(port: int, path: str, **kw) -> tuple[int, dict]:
    status, _, data = request(port, "GET", path, **kw)
    return status, json.loads(data)


def open_stream(port: int, body: dict, headers: dict | None = None, timeout: float = 60.0) -> socket.socket:
    """A streamed completion sent on a raw socket, nothing read yet."""
    data = json.dumps({**body, "stream": True}).encode()
    heads = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n{heads}\r\n".encode() + data)
    return sock


def read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    """Bytes from ``sock`` up to and including ``marker`` (or the end of the connection)."""
    got = b""
    while marker not in got and len(got) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def sse_events(stream_bytes: bytes) -> list:
    """The data of each server-sent event of an HTTP/1.1 chunked response (headers included)."""
    body = stream_bytes.split(b"\r\n\r\n", 1)[1]
    unchunked, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        unchunked, rest = unchunked + rest[:size], rest[size + 2:]
    events = []
    for block in unchunked.decode().split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def metric(port: int, name: str, headers: dict | None = None, **labels: str) -> float:
    """The value of one sample of /metrics (0 when it is not there)."""
    _, _, data = request(port, "GET", "/metrics", headers=headers)
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in data.decode().splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")):
            return float(line.rsplit(" ", 1)[1])
        if want and line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for(condition, timeout: float = 10.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def copy_run(source: Path, target: Path) -> Path:
    """A run folder of the test's own (the server may be shown a changing metrics.jsonl)."""
    import shutil

    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock"))
    return target


async def read_response(reader: asyncio.StreamReader, head: bool = False) -> tuple[int, dict, bytes] | None:
    """One HTTP/1.1 response from an asyncio stream (Content-Length or chunked; the answer to a
    HEAD, ``head``, has no body); None when the server closed the connection (or reset it)
    before answering."""
    try:
        header_block = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    if head:
        body = b""
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        body = b""
    return int(status_line.split()[1]), headers, body


def http_request(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    """The bytes of one HTTP/1.1 request (keep-alive), JSON unless ``headers`` say otherwise."""
    heads = {"Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": str(len(body)),
             **(headers or {})}
    return f"{method} {path} HTTP/1.1\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in heads.items()).encode() \
        + b"\r\n" + body
