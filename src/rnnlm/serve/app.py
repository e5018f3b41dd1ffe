"""The HTTP app: routes, validation, errors, limits, the API key, metrics and the page.

    POST /v1/completions   OpenAI's completions API (streamed as server-sent events or not)
    GET  /v1/models        the models served (each with its card); /v1/models/{id} one of them
    POST /v1/score         per-token surprisal of a text, top alternatives, a hidden unit's trace
    GET  /v1/runs          the metrics.jsonl of every model served (the page's charts poll it)
    GET  /health           up and which models (no API key needed)
    GET  /metrics          Prometheus' text format
    GET  /                 the playground; /docs the OpenAPI page, /openapi.json its document

Every error is OpenAI's object ``{"error": {"message", "type", "param", "code"}}``: 400 a body
that is not a JSON object, 401 a missing or wrong API key, 404 an unknown model or route, 408 a
body that does not arrive, 413 a body too large, 422 a field of the wrong type, missing or out
of range (``param`` names it), 503 no room (with ``Retry-After``), 500 a bug.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from rnnlm import __version__
from rnnlm.errors import RnnlmError
from rnnlm.generation.sampling import Sampling
from rnnlm.serve import scoring
from rnnlm.serve.batcher import Busy, CompletionJob, ModelWorker
from rnnlm.serve.metrics import ServerMetrics
from rnnlm.serve.models import ServedModel
from rnnlm.serve.options import ServeOptions
from rnnlm.serve.schemas import (
    DONE,
    MAX_PROMPTS,
    ChunkWriter,
    CompletionRequest,
    ScoreRequest,
    completion_id,
    completion_json,
    error_body,
    logprobs_json,
    model_json,
)

STATIC = resources.files("rnnlm.serve") / "static"
BODY_TIMEOUT = 10.0  # seconds a client may take to send its request body
PUBLIC = ("/health", "/", "/favicon.ico", "/docs", "/openapi.json")  # no API key: they hold no data
PUBLIC_PREFIXES = ("/static/", "/docs/")


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, type_: str = "invalid_request_error",
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.type, self.code, self.headers = (
            status, message, param, type_, code, headers)


def error_response(status: int, message: str, param: str | None = None, type_: str = "invalid_request_error",
                   code: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, param, code), status_code=status, headers=headers)


class Service:
    """What the routes share: the models, their workers, the options and the metrics."""

    def __init__(self, models: dict[str, ServedModel], options: ServeOptions, metrics: ServerMetrics):
        self.models, self.options, self.metrics = models, options, metrics
        self.workers: dict[str, ModelWorker] = {}
        self.closing = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        for model_id, model in self.models.items():
            worker = ModelWorker(model_id, model.session, loop, self.metrics, self.options.max_streams,
                                 self.options.queue)
            worker.thread.start()
            self.workers[model_id] = worker

    def close(self) -> None:
        """Stop accepting; the workers end the streams in flight at their next step."""
        self.closing = True
        for worker in self.workers.values():
            worker.close()

    def join(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for worker in self.workers.values():
            worker.thread.join(max(0.0, deadline - time.monotonic()))

    def model(self, model_id: str | None) -> ServedModel:
        if model_id is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            raise ApiError(422, f"model is required: this server has {len(self.models)} models "
                                f"({', '.join(sorted(self.models))})", "model")
        try:
            return self.models[model_id]
        except KeyError:
            raise ApiError(404, f"the model {model_id!r} does not exist; GET /v1/models lists the ones served",
                           "model", code="model_not_found") from None


def create_app(models: dict[str, ServedModel], options: ServeOptions = ServeOptions()) -> FastAPI:
    metrics = ServerMetrics()
    service = Service(models, options, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start(asyncio.get_running_loop())
        yield
        service.close()
        await asyncio.get_running_loop().run_in_executor(None, service.join)

    # openapi_version: the Swagger UI that ships as a package (4.x, served at /docs without a CDN)
    # reads 3.0 documents only; what FastAPI writes reads the same there.
    app = FastAPI(title="rnnlm", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="OpenAI-compatible completions from recurrent language models, with per-token "
                              "scoring. The playground is at /.")
    app.openapi_version = "3.0.3"
    app.state.service = service
    add_error_handlers(app)
    add_routes(app, service)
    app.add_middleware(Guard, service=service)
    if options.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.message, e.param, e.type, e.code, e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return validation_error(e.errors(), request.headers.get("content-type", ""))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        message = {404: f"no route {request.method} {request.url.path}; see /docs",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
        return error_response(e.status_code, message, code="not_found" if e.status_code == 404 else None,
                              headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        return error_response(500, f"internal error ({type(e).__name__}); this is a bug in rnnlm", type_="server_error")


def validation_error(errors: list[dict], content_type: str = "application/json") -> JSONResponse:
    """The first of pydantic's errors as OpenAI's error object: 400 for a body that is not a JSON
    object at all (or not sent as JSON), else 422 naming the field."""
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": ""}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    kind = first.get("type", "")
    if kind == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return error_response(400, f"the body is not valid JSON ({reason})" if reason else "the body is not valid JSON",
                              code="invalid_json")
    if not loc:
        message = "the body must be a JSON object" if kind != "missing" else "the body is missing (send a JSON object)"
        if "json" not in content_type.lower():
            message += f"; send it with Content-Type: application/json (not {content_type or 'none'})"
        return error_response(400, message, code="invalid_body")
    param = loc[0] if loc[0] in ("prompt", "stop") else ".".join(loc)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = "unknown field (not part of the API)"
    return error_response(422, f"{param}: {message}", param, code=kind or None)


def add_routes(app: FastAPI, service: Service) -> None:
    options, metrics = service.options, service.metrics

    @app.get("/health", tags=["server"])
    async def health() -> dict:
        """Up, and the models served (no API key needed)."""
        return {"status": "shutting down" if service.closing else "ok", "models": sorted(service.models)}

    @app.get("/metrics", tags=["server"], response_class=Response)
    async def prometheus() -> Response:
        """Prometheus' text format: requests, tokens, active streams, batch sizes, latencies."""
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models", tags=["models"])
    async def list_models() -> dict:
        """The models served, OpenAI's list, each with rnnlm's model card."""
        return {"object": "list",
                "data": [model_json(m.id, m.created, m.card()) for m in service.models.values()]}

    @app.get("/v1/models/{model_id}", tags=["models"])
    async def get_model(model_id: str) -> dict:
        m = service.model(model_id)
        return model_json(m.id, m.created, m.card())

    @app.get("/v1/runs", tags=["models"])
    async def runs() -> dict:
        """The training metrics (metrics.jsonl) of every model served, read again when they change."""
        return {"object": "list", "data": [
            {"model": m.id, "metrics": m.metrics.read(), "updated": m.metrics.updated}
            for m in service.models.values()]}

    @app.post("/v1/completions", tags=["completions"])
    async def completions(body: CompletionRequest, request: Request) -> Any:
        """OpenAI's completions API; ``top_k`` is an extension."""
        model = service.model(body.model)
        job = completion_job(body, model, options)
        worker = service.workers[model.id]
        started = time.perf_counter()
        if body.stream:
            return EventStream(job, worker, body, model.id, metrics, started)
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        job.deliver = lambda event: done.done() or done.set_result(event)
        submit(worker, job, metrics)
        watcher = asyncio.ensure_future(wait_for_disconnect(request.receive))
        try:
            await asyncio.wait([done, watcher], return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if not done.done():  # the client went away: free its slots
            worker.cancel(job)
            return Response(status_code=499)
        kind, failure = done.result()
        if kind == "error":
            raise ApiError(failure.status, failure.message, type_="server_error", code=failure.code,
                           headers=failure.headers)
        metrics.request_seconds.labels(model.id, "completions").observe(time.perf_counter() - started)
        return completion_json(completion_id(), int(time.time()), model.id, job.prompt_texts, job.streams, job.n,
                               body.echo, job.prompt_tokens)

    @app.post("/v1/score", tags=["score"])
    async def score(body: ScoreRequest) -> dict:
        """Per-token surprisal of a text as ``rnnlm score`` gives it: each token's log-probability
        (natural log), the most likely alternatives and, with ``unit``, that hidden unit's value."""
        model = service.model(body.model)
        if len(body.text) > options.max_prompt_chars:
            raise ApiError(422, f"text: at most {options.max_prompt_chars:,} characters (got {len(body.text):,})",
                           "text")
        started = time.perf_counter()
        run = model.session.run
        try:
            result = await service.workers[model.id].score(
                lambda: scoring.score_json(run, body.text, body.top, body.layer, body.unit))
        except Busy as e:
            metrics.rejected.labels(model.id).inc()
            raise ApiError(503, str(e), type_="server_error", code="busy",
                           headers={"Retry-After": str(e.retry_after)}) from None
        except RnnlmError as e:
            message = str(e)
            param = next((p for p in ("unit", "layer", "top") if message.startswith(p)), "text")
            raise ApiError(422, message, param) from None
        metrics.request_seconds.labels(model.id, "score").observe(time.perf_counter() - started)
        return result

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="rnnlm API",
                                   swagger_js_url="/docs/swagger-ui-bundle.js", swagger_css_url="/docs/swagger-ui.css",
                                   swagger_favicon_url="/docs/favicon-32x32.png")

    import swagger_ui_bundle

    app.mount("/docs", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")


def completion_job(body: CompletionRequest, model: ServedModel, options: ServeOptions) -> CompletionJob:
    """The request's settings, checked against this server's limits and the model's vocab."""
    unsupported = body.unsupported()
    if unsupported:
        raise ApiError(422, unsupported[1], unsupported[0], code="unsupported")
    prompts = body.prompts()
    if len(prompts) > MAX_PROMPTS:
        raise ApiError(422, f"prompt: at most {MAX_PROMPTS} prompts in one request (got {len(prompts)})", "prompt")
    vocab_size = len(model.session.vocab)
    for p in prompts:
        if len(p) > options.max_prompt_chars:
            what = "characters" if isinstance(p, str) else "tokens"
            raise ApiError(422, f"prompt: at most {options.max_prompt_chars:,} {what} (got {len(p):,})", "prompt")
        if not isinstance(p, str):
            if not p:
                raise ApiError(422, "prompt: a list of token ids must not be empty", "prompt")
            bad = next((t for t in p if not 0 <= t < vocab_size), None)
            if bad is not None:
                raise ApiError(422, f"prompt: token id {bad} is not in 0..{vocab_size - 1}, the model's vocab", "prompt")
    max_tokens = 16 if body.max_tokens is None else body.max_tokens
    if max_tokens > options.max_tokens:
        raise ApiError(422, f"max_tokens: at most {options.max_tokens:,} on this server (got {max_tokens:,})",
                       "max_tokens")
    size = len(prompts) * body.n
    if size > options.max_streams:
        raise ApiError(422, f"n: {size} choices in all, more than the {options.max_streams} streams this server runs "
                            "per model", "n")
    temperature = 1.0 if body.temperature is None else body.temperature
    top_p = None if body.top_p is None or body.top_p >= 1 else body.top_p
    top_k = None if body.top_k is None or body.top_k <= 0 else body.top_k
    greedy = temperature == 0 or top_p == 0
    sampling = Sampling(temperature if temperature > 0 else 1.0, top_k, None if greedy else top_p, greedy)
    return CompletionJob(prompts, body.n, max_tokens, body.stops(), sampling, body.seed, body.logprobs, body.stream,
                         deliver=lambda event: None)


def submit(worker: ModelWorker, job: CompletionJob, metrics: ServerMetrics) -> None:
    try:
        worker.submit(job)
    except Busy as e:
        metrics.rejected.labels(worker.model_id).inc()
        raise ApiError(503, str(e), type_="server_error", code="busy",
                       headers={"Retry-After": str(e.retry_after)}) from None


async def wait_for_disconnect(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class EventStream(Response):
    """A streamed completion: one server-sent event per token of each choice, sent as soon as the
    step that made it ends, then ``data: [DONE]``. The response starts when the first event is
    ready, so a request refused while it waited still gets a proper 503. A client that goes away
    cancels its streams (they leave the batch at the next step)."""

    media_type = "text/event-stream"

    def __init__(self, job: CompletionJob, worker: ModelWorker, body: CompletionRequest, model_id: str,
                 metrics: ServerMetrics, started: float):
        super().__init__(status_code=200)
        self.job, self.worker, self.body, self.model_id, self.metrics, self.started = (
            job, worker, body, model_id, metrics, started)
        self.events: list[tuple] = []
        self.wake: asyncio.Future | None = None
        job.deliver = self.deliver
        submit(worker, job, metrics)

    def deliver(self, event: tuple) -> None:
        self.events.append(event)
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def next_events(self) -> list[tuple]:
        while not self.events:
            self.wake = asyncio.get_running_loop().create_future()
            await self.wake
        events, self.events = self.events, []
        return events

    async def __call__(self, scope, receive, send) -> None:
        job, writer = self.job, ChunkWriter(completion_id(), self.model_id)
        self.begun, self.offsets = [False] * job.size, [0] * job.size
        started = completed = False
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        watcher.add_done_callback(lambda w: w.cancelled() or self.client_left())
        try:
            while not job.cancelled:
                parts, finished = [], False
                for kind, payload in await self.next_events():
                    if kind == "error":
                        if not started:
                            await error_response(payload.status, payload.message, type_="server_error",
                                                 code=payload.code, headers=payload.headers)(scope, receive, send)
                            return
                        parts.append(writer.error(payload.message))
                        finished = True
                    elif kind == "tokens":
                        parts.extend(self.chunks(writer, payload))
                    elif kind == "done":
                        finished = True
                if job.cancelled:
                    return
                if not started:
                    await send({"type": "http.response.start", "status": 200, "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no")]})
                    started = True
                if finished:
                    completed = True
                    if self.body.stream_options is not None and self.body.stream_options.include_usage:
                        parts.append(writer.usage(sum(job.prompt_tokens), sum(s.tokens for s in job.streams)))
                    parts.append(DONE)
                    await send({"type": "http.response.body", "body": "".join(parts).encode(), "more_body": False})
                    self.metrics.request_seconds.labels(self.model_id, "completions").observe(
                        time.perf_counter() - self.started)
                    return
                if parts:
                    await send({"type": "http.response.body", "body": "".join(parts).encode(), "more_body": True})
        except OSError:  # the connection broke while we wrote
            return
        finally:
            watcher.cancel()
            if not completed:
                self.worker.cancel(job)

    def client_left(self) -> None:
        if not self.job.cancelled:
            self.worker.cancel(self.job)
            self.deliver(("gone", None))

    def chunks(self, writer: ChunkWriter, pieces: list) -> list[str]:
        """One event per token of each choice (the echoed prompt rides on a choice's first)."""
        job, parts = self.job, []
        for choice, text, record, finish in pieces:
            if not self.begun[choice]:
                self.begun[choice] = True
                prompt = job.prompt_texts[choice // job.n]
                self.offsets[choice] = len(prompt)
                if self.body.echo:
                    text = prompt + text
            if record is None and not text and finish is None:
                continue
            lp = None
            if job.logprobs is not None:
                lp = logprobs_json([] if record is None else [record], self.offsets[choice])
                self.offsets[choice] += 0 if record is None else len(record.text)
            parts.append(writer.chunk(choice, text, lp, finish))
        return parts


class Guard:
    """Pure ASGI middleware in front of every route: the API key, the body's size and time limits,
    and the request counter (it sees each response's status without wrapping the body)."""

    def __init__(self, app, service: Service):
        self.app, self.service = app, service
        options = service.options
        self.key = None if options.api_key is None else options.api_key.encode()
        self.max_body = options.max_body
        self.requests = service.metrics.requests

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        status_seen: list[int] = []

        async def counted_send(message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
            await send(message)

        try:
            problem = self.refuse(scope)
            if problem is None and method in ("POST", "PUT", "PATCH"):
                body = await self.read_body(scope, receive)
                if isinstance(body, JSONResponse):
                    problem = body
                else:
                    receive = replay(body, receive)
            if problem is not None:
                await problem(scope, receive, counted_send)
            else:
                await self.app(scope, receive, counted_send)
        finally:
            self.requests.labels(method, route_label(path), str(status_seen[0] if status_seen else 499)).inc()

    def refuse(self, scope) -> JSONResponse | None:
        """401 unless the request carries the API key (where one is set and the path needs it)."""
        path = scope["path"]
        if self.key is None or path in PUBLIC or path.startswith(PUBLIC_PREFIXES) or scope["method"] == "OPTIONS":
            return None
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return None
        message = "a valid API key is required: send the header Authorization: Bearer KEY"
        return error_response(401, message, type_="invalid_request_error", code="invalid_api_key",
                              headers={"WWW-Authenticate": "Bearer"})

    async def read_body(self, scope, receive) -> bytes | JSONResponse:
        """The whole body, at most ``max_body`` bytes, within BODY_TIMEOUT seconds."""
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = error_response(413, f"the request body is larger than {self.max_body:,} bytes", code="too_large")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return too_large if declared.isdigit() else error_response(400, "bad Content-Length")
        chunks, size = [], 0
        deadline = time.monotonic() + BODY_TIMEOUT
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return error_response(408, f"the request body did not arrive within {BODY_TIMEOUT:.0f} s",
                                      code="timeout")
            if message["type"] == "http.disconnect":
                return error_response(400, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def replay(body: bytes, receive):
    """A receive that gives the body already read, then the client's own messages (its disconnect)."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


KNOWN_ROUTES = ("/health", "/metrics", "/v1/models", "/v1/completions", "/v1/score", "/v1/runs", "/", "/docs",
                "/openapi.json")


def route_label(path: str) -> str:
    """A path as a metrics label, without unbounded values (a model id, a typo'd path)."""
    if path in KNOWN_ROUTES:
        return path
    for prefix, label in (("/v1/models/", "/v1/models/{id}"), ("/static/", "/static"), ("/docs/", "/docs")):
        if path.startswith(prefix):
            return label
    return "other"
