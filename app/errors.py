"""One error body for every failure: {"error": message, "error_type": kind}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .scheduler import Overloaded
from .schemas import ErrorResponse
from .service import GenerationFailed, RequestInvalid

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type, self.headers = status, message, error_type, headers


def error_body(message: str, error_type: str) -> dict[str, str]:
    return {"error": message, "error_type": error_type}


def describe_validation(errors: list[Any]) -> str:
    """pydantic's error list as one line naming each field, e.g. "`parameters.top_p`: ..."."""
    parts = []
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body",)]
        # Drop pydantic's union-branch labels ("str", "list[str]") from the path.
        loc = [x for x in loc if not x.startswith(("list[", "function-"))]
        where = ".".join(loc) or "body"
        if err.get("type") == "json_invalid":
            parts.append(f"malformed JSON body: {err.get('ctx', {}).get('error', err.get('msg'))}")
        else:
            parts.append(f"`{where}`: {err.get('msg')}")
    return "; ".join(dict.fromkeys(parts))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(describe_validation(list(exc.errors())), "validation"), status_code=422)

    @app.exception_handler(RequestInvalid)
    async def _invalid(_: Request, exc: RequestInvalid) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "validation"), status_code=422)

    @app.exception_handler(Overloaded)
    async def _overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "overloaded"), status_code=429,
                            headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(GenerationFailed)
    async def _failed(_: Request, exc: GenerationFailed) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "generation"), status_code=500)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.error_type), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. invalid UTF-8): one status for all
            return JSONResponse(error_body(f"malformed request body: {exc.detail}", "validation"), status_code=422)
        kind = "not_found" if exc.status_code in (404, 405) else "validation"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key (only when keys are configured)",
          "content": {"application/json": {"example": error_body(
              "missing or invalid API key (send Authorization: Bearer <key>)", "unauthorized")}}},
    413: {"model": ErrorResponse, "description": "Request body over `max_body_bytes`",
          "content": {"application/json": {"example": error_body(
              "request body is over the 2000000-byte limit", "validation")}}},
    422: {"model": ErrorResponse, "description": "Validation error: the message names the field",
          "content": {"application/json": {"example": error_body("`parameters.top_p`: Input should be less "
                                                                  "than or equal to 1", "validation")}}},
    429: {"model": ErrorResponse, "description": "Queue full; retry after the Retry-After header's seconds",
          "content": {"application/json": {"example": error_body("the queue is full (128 requests waiting)",
                                                                  "overloaded")}}},
    503: {"model": ErrorResponse, "description": "Not ready yet, or draining for shutdown",
          "content": {"application/json": {"example": error_body("the server is draining", "unhealthy")}}},
    500: {"model": ErrorResponse, "description": "The engine failed this request",
          "content": {"application/json": {"example": error_body("generation failed: ...", "generation")}}},
}
