"""The HTTP app: the routes, the streamed answer and the page.

    POST /v1/completions   OpenAI's completions API (streamed as server-sent events or not)
    GET  /v1/models        the models served (each with its card); /v1/models/{id} one of them
    POST /v1/score         per-token surprisal of a text, top alternatives, a hidden unit's trace
    GET  /v1/runs          the metrics.jsonl of every model served (the page's charts poll it)
    GET  /health           up and which models (no API key needed)
    GET  /metrics          Prometheus' text format
    GET  /                 the playground; /docs the OpenAPI page, /openapi.json its document
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from rnnlm import __version__
from rnnlm.serve import scoring
from rnnlm.serve.batcher import ModelWorker
from rnnlm.serve.errors import add_error_handlers, http_error
from rnnlm.serve.guard import Guard
from rnnlm.serve.jobs import CompletionJob
from rnnlm.serve.metrics import ServerMetrics
from rnnlm.serve.requests import CompletionRequest, ScoreRequest
from rnnlm.serve.responses import DONE, ChunkWriter, completion_id, completion_json, logprobs_json, model_json
from rnnlm.serve.service import Service

STATIC = resources.files("rnnlm.serve") / "static"
BODY_TIMEOUT = 10.0  # seconds a client may take to send its request body
PUBLIC = ("/health", "/", "/favicon.ico", "/docs", "/openapi.json")  # no API key: they hold no data
PUBLIC_PREFIXES = ("/static/", "/docs/")


def create_app(service: Service) -> FastAPI:
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
    add_error_handlers(app)
    add_routes(app, service)
    options = service.options
    app.add_middleware(Guard, api_key=options.api_key, max_body=options.max_body, requests=service.metrics.requests)
    if options.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


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
        job = body.to_job(model, options)
        worker = service.workers[model.id]
        started = time.perf_counter()
        if body.stream:
            return EventStream(job, worker, body, model.id, metrics, started)
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        job.deliver = lambda event: done.done() or done.set_result(event)
        worker.submit(job)
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
            raise failure
        metrics.request_seconds.labels(model.id, "completions").observe(time.perf_counter() - started)
        return completion_json(completion_id(), int(time.time()), model.id, job.prompt_texts, job.streams, job.n,
                               body.echo, job.prompt_tokens)

    @app.post("/v1/score", tags=["score"])
    async def score(body: ScoreRequest) -> dict:
        """Per-token surprisal of a text as ``rnnlm score`` gives it: each token's log-probability
        (natural log), the most likely alternatives and, with ``unit``, that hidden unit's value."""
        return await scoring.score(service, body)

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
        worker.submit(job)

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
                            await http_error(payload).response()(scope, receive, send)
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
