"""Errors as the API answers them: OpenAI's error object ``{"error": {"message", "type", "param",
"code"}}`` with its HTTP status, and the one mapping from what went wrong below the routes (a
setting refused, an unknown model, no room, the server stopping, a fault in a job) to it.

    400 a body that is not a JSON object, or not   413 a body too large
        JSON in UTF-8 with Unicode text            422 a field of the wrong type, missing or out of
        (``invalid_json``, see ``jsonbody``)           range (``param`` names it)
    401 a missing or wrong API key                 500 a bug, or a fault in a job
    404 an unknown model or route                  503 no room, every connection taken, or the
    405 a method the route does not take               server stopping (Retry-After)
    408 a body that does not arrive
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rnnlm.errors import RnnlmError, SettingError
from rnnlm.serve.jobs import Busy, Failure, Fault, ShuttingDown
from rnnlm.serve.requests import Unsupported, json_field
from rnnlm.serve.responses import error_body
from rnnlm.serve.service import UnknownModel


@dataclass(frozen=True)
class ApiError:
    """One error answer: its status, OpenAI's error object and its headers."""

    status: int
    message: str
    param: str | None = None
    type: str = "invalid_request_error"
    code: str | None = None
    headers: dict[str, str] | None = None

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.message, self.type, self.param, self.code), status_code=self.status,
                            headers=self.headers)


def http_error(error: Exception) -> ApiError:
    """The answer to an outcome of the layers below the routes; any other mistake in the input
    (an RnnlmError that names no setting) is a 422 without a param."""
    if isinstance(error, Busy):
        return ApiError(503, str(error), type="server_error", code="busy",
                        headers={"Retry-After": str(error.retry_after)})
    if isinstance(error, ShuttingDown):
        return ApiError(503, str(error), type="server_error", code="shutting_down", headers={"Retry-After": "1"})
    if isinstance(error, Fault):
        return ApiError(500, str(error), type="server_error", code="internal_error")
    if isinstance(error, UnknownModel):
        return ApiError(404, str(error), "model", code="model_not_found")
    if isinstance(error, SettingError):
        code = "unsupported" if isinstance(error, Unsupported) else None
        return ApiError(422, error.spelled(json_field), json_field(error.field), code=code)
    return ApiError(422, str(error))


def validation_error(errors: list[dict], content_type: str = "application/json") -> ApiError:
    """The first of pydantic's errors: 400 for a body that is not a JSON object at all (or not
    sent as JSON), else 422 naming the field (first in the message, unless the message already
    names it: the library's own)."""
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": ""}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    kind = first.get("type", "")
    if kind == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return ApiError(400, f"the body is not valid JSON ({reason})" if reason else "the body is not valid JSON",
                        code="invalid_json")
    if not loc:
        message = "the body must be a JSON object" if kind != "missing" else "the body is missing (send a JSON object)"
        if "json" not in content_type.lower():
            message += f"; send it with Content-Type: application/json (not {content_type or 'none'})"
        return ApiError(400, message, code="invalid_body")
    param = loc[0] if loc[0] in ("prompt", "stop") else ".".join(loc)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = "unknown field (not part of the API)"
    if not message.startswith(f"{param} "):
        message = f"{param}: {message}"
    return ApiError(422, message, param, code=kind or None)


def route_error(request: Request, e: StarletteHTTPException) -> ApiError:
    """A path no route has, a method the route does not take, or a body FastAPI could not parse
    (the guard refuses such bodies first; this is the backstop)."""
    message = {404: f"no route {request.method} {request.url.path}; see /docs",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
    code = {404: "not_found", 400: "invalid_json"}.get(e.status_code)  # 400: a body FastAPI could not parse
    return ApiError(e.status_code, message, code=code, headers=getattr(e, "headers", None))


def add_error_handlers(app: FastAPI) -> None:
    """Every error the app raises answered as OpenAI's error object."""

    async def outcome(request: Request, e: Exception) -> JSONResponse:
        return http_error(e).response()

    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return validation_error(e.errors(), request.headers.get("content-type", "")).response()

    async def no_route(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return route_error(request, e).response()

    async def bug(request: Request, e: Exception) -> JSONResponse:
        message = f"internal error ({type(e).__name__}); this is a bug in rnnlm"
        return ApiError(500, message, type="server_error").response()

    for kind in (RnnlmError, Busy, Failure):
        app.add_exception_handler(kind, outcome)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, no_route)
    app.add_exception_handler(Exception, bug)
