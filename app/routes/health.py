"""/health, /live, /metrics and /info."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from ..deps import ServiceDep, StateDep
from ..errors import ERROR_RESPONSES, error_body
from ..schemas import Info

router = APIRouter(tags=["health"])
info_router = APIRouter(tags=["health"])


@router.get("/health", response_class=Response,  # an empty 200: no JSON body to document
            responses={200: {"description": "Ready: model loaded, engine loop making progress"},
                       503: ERROR_RESPONSES[503]})
async def health(state: StateDep) -> Response:
    """Ready to serve (for readiness probes and load balancers)."""
    if state.healthy():
        return Response(status_code=200)
    reason = ("draining for shutdown" if state.draining else "the model is not loaded yet" if not state.ready
              else "the engine loop has stalled or stopped")
    return JSONResponse(error_body(reason, "unhealthy"), status_code=503)


@router.get("/live", response_class=Response, responses={200: {"description": "The process answers"}})
async def live() -> Response:
    """The process is alive (for liveness probes)."""
    return Response(status_code=200)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}})
def metrics(state: StateDep) -> Response:
    """Prometheus metrics (the scheduler keeps its gauges current)."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@info_router.get("/info", response_model=Info,
                 responses={401: ERROR_RESPONSES[401], 503: ERROR_RESPONSES[503]})
async def info(service: ServiceDep, state: StateDep) -> Info:
    """The model and the server's limits (TGI's /info)."""
    engine, s = service.engine, state.settings
    return Info(
        model_id=state.model_id, model_type=engine.model_type, model_dtype=engine.dtype_name,
        model_device_type=engine.device.type, causal=engine.cfg.causal, can_generate=engine.can_generate,
        num_parameters=engine.num_parameters, max_input_tokens=service.max_input_tokens,
        max_total_tokens=service.max_total_tokens, max_batch_size=s.max_batch_size,
        max_batch_prefill_tokens=s.max_batch_prefill_tokens, max_concurrent_requests=s.max_queue_size,
        max_client_batch_size=s.max_client_batch_size, max_stop_sequences=s.max_stop_sequences, max_best_of=1,
        version=__version__)
