"""The middleware in front of every route: the connection limit, the API key, the request body's
size and time limits, the one rule for a JSON body's text (``jsonbody``), HEAD wherever GET is
served, and the request counter. Pure ASGI: it sees each response's status without wrapping its
body, so streamed answers pass through as they are sent."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rnnlm.serve.errors import ApiError
from rnnlm.serve.jsonbody import check_json_body

BODY_TIMEOUT = 10.0  # seconds a client may take to send its request body
PUBLIC = ("/health", "/", "/favicon.ico", "/docs", "/openapi.json")  # no API key: they hold no data
PUBLIC_PREFIXES = ("/static/", "/docs/")
KNOWN_ROUTES = ("/health", "/metrics", "/v1/models", "/v1/completions", "/v1/score", "/v1/runs", "/", "/docs",
                "/openapi.json")
CLIENT_GONE = 499  # the status counted for a request whose client left before its answer began
TOO_MANY_CONNECTIONS = "too_many_connections"


@dataclass(frozen=True)
class ConnectionLimit:
    """The most connections the server holds (beyond them a request is refused and its connection
    closed, which keeps file descriptors for the server's own files); how many are open, and
    the address of each (host, port: a request's ``scope["client"]``)."""

    most: int
    open: Callable[[], int]
    clients: Callable[[], set]


class Guard:
    def __init__(self, app: ASGIApp, api_key: str | None, max_body: int, requests: Counter,
                 json_paths: tuple[str, ...] = (), connections: ConnectionLimit | None = None):
        """``json_paths``: where a POST's body is JSON (the text rule applies there)."""
        self.app, self.max_body, self.requests = app, max_body, requests
        self.key = None if api_key is None else api_key.encode()
        self.json_paths, self.connections = json_paths, connections
        self.shed: set = set()  # the clients of connections refused at the limit (closing once answered)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        status_seen: list[int] = []

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
            await send(message)

        try:
            problem = self.refuse(scope)
            if problem is None and method in ("POST", "PUT", "PATCH"):
                body = await self.read_body(scope, receive)
                if isinstance(body, ApiError):
                    problem = body
                else:
                    receive = replay(body, receive)
                    if method == "POST" and path in self.json_paths:
                        problem = check_json_body(body, header(scope, b"content-type").decode("latin-1"))
            if problem is not None:
                await problem.response()(scope, receive, counted_send)
            elif method == "HEAD":  # the GET route's answer, without its body
                await self.app({**scope, "method": "GET"}, receive, without_body(counted_send))
            else:
                await self.app(scope, receive, counted_send)
        finally:
            status = str(status_seen[0] if status_seen else CLIENT_GONE)
            self.requests.labels(method, route_label(path), status).inc()

    def refuse(self, scope: Scope) -> ApiError | None:
        """503 beyond the connection limit; 401 unless the request carries the API key (where one
        is set and the path needs it)."""
        if self.over_connection_limit(scope):
            limit = self.connections
            return ApiError(503, f"this server holds at most {limit.most:,} connections and they are all open; "
                                 "try again shortly", type="server_error", code=TOO_MANY_CONNECTIONS,
                            headers={"Retry-After": "1", "Connection": "close"})
        path = scope["path"]
        if self.key is None or path in PUBLIC or path.startswith(PUBLIC_PREFIXES) or scope["method"] == "OPTIONS":
            return None
        given = header(scope, b"authorization")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return None
        return ApiError(401, "a valid API key is required: send the header Authorization: Bearer KEY",
                        code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    def over_connection_limit(self, scope: Scope) -> bool:
        """Whether to refuse this request (and close its connection): more connections are open
        than the limit, not counting those refused already and still closing. So a burst past the
        limit sheds the connections beyond it, not every one. Costs a look at every connection,
        only while past the limit."""
        limit = self.connections
        if limit is None or limit.open() <= limit.most:
            self.shed.clear()
            return False
        self.shed &= limit.clients()
        if limit.open() - len(self.shed) <= limit.most:
            return False
        self.shed.add(scope.get("client"))
        return True

    async def read_body(self, scope: Scope, receive: Receive) -> bytes | ApiError:
        """The whole body, at most ``max_body`` bytes, within BODY_TIMEOUT seconds."""
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = ApiError(413, f"the request body is larger than {self.max_body:,} bytes", code="too_large")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return too_large if declared.isdigit() else ApiError(400, "bad Content-Length")
        chunks, size = [], 0
        deadline = time.monotonic() + BODY_TIMEOUT
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return ApiError(408, f"the request body did not arrive within {BODY_TIMEOUT:.0f} s", code="timeout")
            if message["type"] == "http.disconnect":
                return ApiError(400, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def header(scope: Scope, name: bytes) -> bytes:
    """A request header's value (the last, if sent twice), b"" when it was not sent."""
    return dict(scope["headers"]).get(name, b"")


def without_body(send: Send) -> Send:
    """A send that drops the response's body (HEAD: the headers of GET, Content-Length included)."""

    async def head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then the client's own messages (its disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def route_label(path: str) -> str:
    """A path as a metrics label, without unbounded values (a model id, a typo'd path)."""
    if path in KNOWN_ROUTES:
        return path
    for prefix, label in (("/v1/models/", "/v1/models/{id}"), ("/static/", "/static"), ("/docs/", "/docs")):
        if path.startswith(prefix):
            return label
    return "other"
