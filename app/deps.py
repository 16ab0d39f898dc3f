"""FastAPI dependencies as named Annotated aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from .errors import ApiError
from .service import Service
from .state import AppState


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.attnserve
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_service(state: StateDep) -> Service:
    if state.draining:
        raise ApiError(503, "the server is draining for shutdown", "unhealthy", {"Retry-After": "5"})
    if not state.ready or state.service is None:
        raise ApiError(503, "the model is not loaded yet", "unhealthy", {"Retry-After": "5"})
    return state.service


ServiceDep = Annotated[Service, Depends(get_service)]


# Declares the Bearer scheme in /openapi.json (apps with keys add it to the protected routes); checks nothing:
# require_api_key does, with the common error body.
bearer_scheme = HTTPBearer(auto_error=False, description="One of the keys in ATTNSERVE_API_KEY / _FILE")


async def require_api_key(request: Request, state: StateDep) -> None:
    """Authorization: Bearer <key>, when keys are configured; compared in constant time."""
    if not state.api_keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip().encode()
    ok = scheme.lower() == "bearer" and any(hmac.compare_digest(given, k.encode()) for k in state.api_keys)
    if not ok:
        raise ApiError(401, "missing or invalid API key (send Authorization: Bearer <key>)", "unauthorized",
                       {"WWW-Authenticate": "Bearer"})
