"""The ASGI app of a service: FastAPI with the routes, the error answers, the middleware (the
API key, body limits, the request counter; CORS where origins are given) and a lifespan that
starts the models' workers and stops them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rnnlm import __version__
from rnnlm.serve.errors import add_error_handlers
from rnnlm.serve.guard import ConnectionLimit, Guard
from rnnlm.serve.routes import add_routes
from rnnlm.serve.service import Service


def create_app(service: Service, connections: ConnectionLimit | None = None) -> FastAPI:
    """The app over ``service``; past ``connections`` (when given) a request is refused."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
    json_paths = tuple(route.path for route in app.routes if "POST" in getattr(route, "methods", ()))
    app.add_middleware(Guard, api_key=options.api_key, max_body=options.max_body, requests=service.metrics.requests,
                       json_paths=json_paths, connections=connections)
    if options.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app
