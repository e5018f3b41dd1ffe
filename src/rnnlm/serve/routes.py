"""The routes: each awaits its handler and makes the HTTP answer of what it gives. What goes
wrong below them is raised and answered by ``rnnlm.serve.errors``.

    POST /v1/completions   OpenAI's completions API (streamed as server-sent events or not)
    GET  /v1/models        the models served (each with its card); /v1/models/{id} one of them
    POST /v1/score         per-token surprisal of a text, top alternatives, a hidden unit's trace
    GET  /v1/runs          the metrics.jsonl of every model served (the page's charts poll it)
    GET  /health           up and which models (no API key needed)
    GET  /metrics          Prometheus' text format
    GET  /                 the playground; /docs the OpenAPI page, /openapi.json its document
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from rnnlm.serve import scoring
from rnnlm.serve.completions import Completions
from rnnlm.serve.guard import CLIENT_GONE
from rnnlm.serve.requests import CompletionRequest, ScoreRequest
from rnnlm.serve.responses import model_json
from rnnlm.serve.service import Service

STATIC = resources.files("rnnlm.serve") / "static"
EVENT_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy holds events back


def add_routes(app: FastAPI, service: Service) -> None:
    add_server_routes(app, service)
    add_model_routes(app, service)
    add_generation_routes(app, service)
    add_pages(app)


def add_server_routes(app: FastAPI, service: Service) -> None:
    @app.get("/health", tags=["server"])
    async def health() -> dict:
        """Up, and the models served (no API key needed)."""
        return {"status": "shutting down" if service.closing else "ok", "models": sorted(service.models)}

    @app.get("/metrics", tags=["server"], response_class=Response)
    async def prometheus() -> Response:
        """Prometheus' text format: requests, tokens, active streams, batch sizes, latencies."""
        return Response(service.metrics.render(), media_type=service.metrics.content_type)


def add_model_routes(app: FastAPI, service: Service) -> None:
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


def add_generation_routes(app: FastAPI, service: Service) -> None:
    handler = Completions(service)

    @app.post("/v1/completions", tags=["completions"])
    async def completions(body: CompletionRequest, request: Request) -> Any:
        """OpenAI's completions API; ``top_k`` is an extension."""
        if body.stream:
            events = await handler.stream(body, request.receive)
            if events is None:
                return Response(status_code=CLIENT_GONE)
            return StreamingResponse(events, media_type="text/event-stream", headers=EVENT_STREAM_HEADERS)
        completion = await handler.complete(body, request.receive)
        return Response(status_code=CLIENT_GONE) if completion is None else completion

    @app.post("/v1/score", tags=["score"])
    async def score(body: ScoreRequest) -> dict:
        """Per-token surprisal of a text as ``rnnlm score`` gives it: each token's log-probability
        (natural log), the most likely alternatives and, with ``unit``, that hidden unit's value."""
        return await scoring.score(service, body)


def add_pages(app: FastAPI) -> None:
    """The playground, and the API's page (Swagger UI, served from its package: no CDN)."""

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
