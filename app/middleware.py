"""ASGI middleware: request ids, body size limit, drain gate, request metrics and access logs."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .openai.errors import is_openai_path, openai_error_body
from .state import AppState

logger = logging.getLogger("attnserve.access")

OPEN_PATHS = {"/health", "/live", "/metrics"}  # never gated by drain, auth or metrics-of-themselves


class ServingMiddleware:
    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        if path in OPEN_PATHS:
            await self.app(scope, receive, send_wrapper)
            return
        if self.state.draining:
            await _reply(send_wrapper, 503, _error(path, 503, "the server is draining for shutdown",
                                                   "unhealthy"), {"retry-after": "5"})
            self._record(scope, path, 503, start, request_id)
            return
        body, too_large = await _read_body(receive, self.state.settings.max_body_bytes,
                                           _header(scope, b"content-length"))
        if too_large:
            limit = self.state.settings.max_body_bytes
            await _reply(send_wrapper, 413, _error(path, 413, f"request body is over the {limit}-byte limit",
                                                   "validation"))
            self._record(scope, path, 413, start, request_id)
            return
        self.state.in_flight += 1
        try:
            await self.app(scope, _replay(body, receive), send_wrapper)
        finally:
            self.state.in_flight -= 1
            self._record(scope, path, status["code"], start, request_id)

    def _record(self, scope: Scope, path: str, status: int, start: float, request_id: str) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or ("unmatched" if status == 404 else path)
        elapsed = time.perf_counter() - start
        metrics = self.state.metrics
        metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
        metrics.request_duration.labels(endpoint=endpoint).observe(elapsed)
        logger.info("request", extra={"fields": {
            "request_id": request_id, "method": scope["method"], "path": path, "status": status,
            "duration_ms": round(elapsed * 1000, 2), **scope.get("state", {}).get("log_fields", {})}})


def _error(path: str, status: int, message: str, error_type: str) -> dict[str, Any]:
    """The native error body, or OpenAI's on its /v1 routes."""
    if is_openai_path(path):
        return openai_error_body(status, message)
    return error_body(message, error_type)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive, limit: int, content_length: str | None) -> tuple[bytes, bool]:
    """Read the whole body up front (the app reads it all anyway), stopping at the limit."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        return b"", True
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then wait for the disconnect, as the real receive would

    return replay


async def _reply(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
