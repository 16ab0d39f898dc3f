"""OpenAI's error body, {"error": {"message", "type", "param", "code"}}, on /v1 paths only.

The native handlers stay in charge of every other path: each handler installed by
`install_error_handlers` is wrapped so that a /v1 request gets OpenAI's shape and status instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..errors import ApiError
from ..scheduler import Overloaded
from ..service import GenerationFailed, RequestInvalid

PREFIX = "/v1"

# OpenAI's `type` per status; 400 and 422 are both "the request is wrong".
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
               422: "invalid_request_error", 429: "rate_limit_error", 499: "invalid_request_error",
               500: "server_error", 503: "service_unavailable_error"}
ERROR_CODES = {401: "invalid_api_key", 404: "not_found", 413: "request_too_large", 429: "rate_limit_exceeded",
               503: "service_unavailable"}

# pydantic's labels for union branches and validators, which are not field names.
_TYPE_NAMES = {"str", "int", "float", "bool", "none"}
_TYPE_PREFIXES = ("list[", "dict[", "function-", "tagged-union[", "literal[", "is-instance[", "nullable[")

Handler = Callable[[Request, Exception], Awaitable[Response]]


class OpenAIError(Exception):
    """An error that only the /v1 routes raise, with OpenAI's `param` and `code`."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def is_openai_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def openai_error_body(status: int, message: str, param: str | None = None,
                      code: str | None = None) -> dict[str, dict[str, str | None]]:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code or ERROR_CODES.get(status)}}


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(openai_error_body(status, message, param, code), status_code=status, headers=headers)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """pydantic's error location as OpenAI's `param`: "messages.0.role", not "body.messages.0.role"."""
    parts = [str(x) for x in loc
             if x != "body" and str(x) not in _TYPE_NAMES and not str(x).startswith(_TYPE_PREFIXES)]
    return ".".join(parts) or None


def describe(errors: list[Any]) -> tuple[str, str | None]:
    """One message naming each field, and the first field as `param`."""
    messages: list[str] = []
    params: list[str] = []
    for err in errors:
        where = field_path(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            messages.append(f"malformed JSON body: {err.get('ctx', {}).get('error', err.get('msg'))}")
            continue
        if where is not None:
            params.append(where)
        messages.append(f"`{where or 'body'}`: {err.get('msg')}")
    return "; ".join(dict.fromkeys(messages)), (params[0] if params else None)


def _scoped(app: FastAPI, exc_class: type[Exception], openai: Handler) -> None:
    """Send /v1 requests to `openai`, everything else to the handler already installed."""
    native: Handler | None = app.exception_handlers.get(exc_class)  # type: ignore[assignment]

    async def handler(request: Request, exc: Exception) -> Response:
        if is_openai_path(request.url.path) or native is None:
            return await openai(request, exc)
        return await native(request, exc)

    app.exception_handlers[exc_class] = handler


async def _validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message, param = describe(list(exc.errors()))
    return openai_error(400, message, param)


async def _invalid(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestInvalid)
    return openai_error(400, str(exc), exc.field or None)


async def _overloaded(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Overloaded)
    return openai_error(429, str(exc), headers={"Retry-After": str(exc.retry_after)})


async def _failed(_: Request, exc: Exception) -> Response:
    return openai_error(500, str(exc))


async def _openai(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, OpenAIError)
    return openai_error(exc.status, exc.message, exc.param, exc.code)


async def _api(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return openai_error(exc.status, exc.message, headers=exc.headers)


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 400:
        message = f"malformed request body: {exc.detail}"
    elif exc.status_code == 404:
        message = "no such route under /v1 (this server has /v1/models, /v1/completions, " \
                  "/v1/chat/completions and /v1/embeddings)"
    return openai_error(exc.status_code, message, headers=getattr(exc, "headers", None))


def install_openai_error_handlers(app: FastAPI) -> None:
    """Call after the native handlers are installed: it wraps them."""
    handlers: dict[type[Exception], Handler] = {
        RequestValidationError: _validation, RequestInvalid: _invalid, Overloaded: _overloaded,
        GenerationFailed: _failed, ApiError: _api, StarletteHTTPException: _http, OpenAIError: _openai,
    }
    for exc_class, handler in handlers.items():
        _scoped(app, exc_class, handler)
