"""/v1/models, /v1/completions, /v1/chat/completions and /v1/embeddings (OpenAI's routes and wire format)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..deps import ServiceDep
from ..routes.generate import until_disconnected, with_keepalive
from ..service import GenerationFailed, Service
from .errors import openai_error_body
from .protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorBody,
    ModelCard,
    ModelList,
)
from .serving import OpenAIServing, Run

router = APIRouter(prefix="/v1", tags=["openai"])


def _error_doc(status: int, description: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description,
            "content": {"application/json": {"example": openai_error_body(status, message, param)}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error_doc(400, "Invalid request: `param` names the field",
                    "`temperature`: Input should be less than or equal to 2", "temperature"),
    401: _error_doc(401, "Missing or wrong API key", "missing or invalid API key"),
    429: _error_doc(429, "Queue full; retry after the Retry-After header's seconds",
                    "the queue is full (128 requests waiting)"),
    503: _error_doc(503, "Not ready yet, or draining for shutdown", "the model is not loaded yet"),
    # Every other client error has the same body; this also keeps FastAPI from listing its 422 here.
    "4XX": _error_doc(404, "Other client errors (404, 405, 413)", "no such route under /v1"),
}
STREAM_DOC = {"text/event-stream": {"example": 'data: {"id":"cmpl-1","object":"text_completion",...}\n\n'
                                               "data: [DONE]\n\n"}}


async def get_serving(service: ServiceDep) -> OpenAIServing:
    return OpenAIServing(service)


ServingDep = Annotated[OpenAIServing, Depends(get_serving)]


@router.get("/models", response_model=ModelList, responses=ERRORS)
def list_models(serving: ServingDep) -> ModelList:
    """The served model (OpenAI's models.list)."""
    return serving.models()


@router.get("/models/{model:path}", response_model=ModelCard,
            responses={**ERRORS, 404: _error_doc(404, "Not the served one", "The model `x` does not exist")})
def retrieve_model(model: str, serving: ServingDep) -> ModelCard:
    """One model (OpenAI's models.retrieve): 404 unless it is the served one."""
    return serving.model_card(model)


@router.post("/completions", response_model=CompletionResponse,
             responses={**ERRORS, 200: {"description": "The completion; SSE chunks with `stream: true`",
                                        "content": STREAM_DOC}})
async def completions(body: CompletionRequest, serving: ServingDep, request: Request) -> Any:
    """Complete one prompt or several (OpenAI's completions.create)."""
    run = serving.start_completion(body)
    if body.stream:
        return sse(serving, run, request)
    await _whole(serving, run, request)
    return serving.completion_response(run)


@router.post("/chat/completions", response_model=ChatCompletionResponse,
             responses={**ERRORS, 200: {"description": "The reply; SSE chunks with `stream: true`",
                                        "content": STREAM_DOC}})
async def chat_completions(body: ChatCompletionRequest, serving: ServingDep, request: Request) -> Any:
    """Answer a conversation formatted by the model's chat template (OpenAI's chat.completions.create)."""
    run = serving.start_chat(body)
    if body.stream:
        return sse(serving, run, request)
    await _whole(serving, run, request)
    return serving.chat_response(run)


@router.post("/embeddings", response_model=EmbeddingResponse, responses=ERRORS)
async def embeddings(body: EmbeddingRequest, serving: ServingDep, request: Request) -> EmbeddingResponse:
    """One embedding per input, normalised (OpenAI's embeddings.create)."""
    reply = await until_disconnected(request, serving.embeddings(body))
    request.state.log_fields = {"inputs": len(reply.data), "prompt_tokens": reply.usage.prompt_tokens}
    return reply


async def _whole(serving: OpenAIServing, run: Run, request: Request) -> None:
    await until_disconnected(request, serving.drain(run))
    usage = run.usage()
    request.state.log_fields = {"prompt_tokens": usage.prompt_tokens, "choices": len(run.choices),
                                "generated_tokens": usage.completion_tokens}


def sse(serving: OpenAIServing, run: Run, request: Request) -> StreamingResponse:
    """OpenAI's stream: `data: {chunk}` events, keep-alive comments in long gaps, then `data: [DONE]`."""
    service: Service = serving.service
    keepalive = service.settings.stream_keepalive_s
    request.state.log_fields = {"prompt_tokens": run.prompt_tokens, "choices": len(run.choices),
                                "stream": True}

    async def events() -> AsyncIterator[str]:
        for chunk in serving.opening_chunks(run):
            yield f"data: {chunk.model_dump_json()}\n\n"
        async for item in with_keepalive(run.outputs, keepalive):
            if item is None:
                yield ": keep-alive\n\n"
                continue
            if isinstance(item, GenerationFailed):
                # The 200 is already out: the error travels as an event, which OpenAI's SDK raises.
                yield f"data: {json.dumps(openai_error_body(500, str(item)))}\n\n"
                break
            for chunk in serving.chunks(run, item):
                yield f"data: {chunk.model_dump_json()}\n\n"
        else:
            for chunk in serving.closing_chunks(run):
                yield f"data: {chunk.model_dump_json()}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
