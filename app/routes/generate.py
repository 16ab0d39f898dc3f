"""POST /generate, /generate_stream and / (TGI's routes and wire format)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter

from ..deps import ServiceDep
from ..engine import GenerationRequest, StepOutput
from ..errors import ERROR_RESPONSES, ApiError
from ..schemas import ErrorResponse, GenerateRequest, GenerateResponse, StreamResponse
from ..service import GenerationFailed, Service

router = APIRouter(tags=["generation"])

T = TypeVar("T")


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its `$defs` substituted in: refs to `#/$defs/...` do not resolve once the
    schema sits inside the OpenAPI document."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


# One SSE event, described as OpenAPI 3.2's `itemSchema` (as FastAPI's own SSE routes are): its `data`
# is JSON, a token event or, when the engine fails mid-stream, the common error body.
SSE_CONTENT: dict[str, Any] = {
    "itemSchema": {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": inline_refs(TypeAdapter(StreamResponse | ErrorResponse).json_schema())},
        "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer", "minimum": 0}}},
    "example": 'data:{"index":1,"token":{"id":5,"text":" the","logprob":-1.2,"special":false},'
               '"generated_text":null,"details":null}\n\n',
}

SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Server-Sent Events: one `data:` line per token, the last with the full text",
          "content": {"text/event-stream": SSE_CONTENT}},
    **ERROR_RESPONSES,
}


@router.post("/generate", response_model=GenerateResponse,
             responses={**ERROR_RESPONSES,
                        200: {"description": "The generated text; with `stream: true`, SSE as /generate_stream",
                              "content": {"text/event-stream": SSE_CONTENT}}})
async def generate(body: GenerateRequest, service: ServiceDep, request: Request) -> Any:
    """Generate text for a prompt (TGI's /generate)."""
    req, input_length = service.prepare(body)
    if body.stream:
        return sse(service, req, input_length, body, request)
    return await _whole(service, req, input_length, body, request)


@router.post("/generate_stream", response_class=StreamingResponse, responses=SSE_RESPONSE)
async def generate_stream(body: GenerateRequest, service: ServiceDep, request: Request) -> StreamingResponse:
    """Generate text, one Server-Sent Event per token (TGI's /generate_stream)."""
    req, input_length = service.prepare(body)
    return sse(service, req, input_length, body, request)


@router.post("/", response_model=list[GenerateResponse],
             responses={**ERROR_RESPONSES, 200: {"description": "`[{...}]` as /generate, or SSE with `stream`",
                                                 "content": {"text/event-stream": SSE_CONTENT}}})
async def compat_generate(body: GenerateRequest, service: ServiceDep, request: Request) -> Any:
    """TGI's compatibility route: /generate's reply wrapped in a one-element list."""
    req, input_length = service.prepare(body)
    if body.stream:
        return sse(service, req, input_length, body, request)
    return [await _whole(service, req, input_length, body, request)]


async def _whole(service: Service, req: GenerationRequest, input_length: int, body: GenerateRequest,
                 request: Request) -> GenerateResponse:
    outputs = service.stream(req)
    gen = await until_disconnected(request, service.collect(req, outputs, input_length))
    request.state.log_fields = {"prompt_tokens": input_length, "generated_tokens": len(gen.tokens),
                                "finish_reason": gen.finish_reason, **_prompt_field(service, body)}
    return service.tgi_response(gen, body)


def _prompt_field(service: Service, body: GenerateRequest) -> dict[str, str]:
    return {"prompt": body.inputs} if service.settings.log_prompts else {}


async def until_disconnected(request: Request, work: Awaitable[T], poll_s: float = 0.2) -> T:
    """Await `work`, cancelling it (and so aborting its generation) if the client goes away."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await request.is_disconnected():
                raise ApiError(499, "client closed the request", "validation")
    finally:
        if not task.done():
            task.cancel()


def sse(service: Service, req: GenerationRequest, input_length: int, body: GenerateRequest,
        request: Request) -> StreamingResponse:
    outputs = service.stream(req)  # queued before the 200 goes out: a full queue is still a 429
    keepalive = service.settings.stream_keepalive_s
    request.state.log_fields = {"prompt_tokens": input_length, "stream": True, **_prompt_field(service, body)}

    async def events() -> AsyncIterator[str]:
        index = 0
        async for item in with_keepalive(outputs, keepalive):
            if item is None:
                yield ": keep-alive\n\n"
                continue
            if isinstance(item, GenerationFailed):
                yield "data:" + json.dumps({"error": str(item), "error_type": "generation"}) + "\n\n"
                return
            index += 1
            event = service.tgi_stream_event(item, index, input_length, body)
            yield "data:" + event.model_dump_json() + "\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def with_keepalive(outputs: AsyncIterator[StepOutput],
                         every_s: float) -> AsyncIterator[StepOutput | GenerationFailed | None]:
    """The outputs, with None after each `every_s` of silence; cancelling this aborts the generation."""
    iterator = aiter(outputs)
    pending: asyncio.Future[StepOutput] = asyncio.ensure_future(anext(iterator))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            except GenerationFailed as exc:
                yield exc
                return
            yield item
            pending = asyncio.ensure_future(anext(iterator))
    finally:
        if not pending.done():
            pending.cancel()  # runs the iterator's cleanup, which aborts the request
            await asyncio.gather(pending, return_exceptions=True)
        elif not pending.cancelled() and pending.exception() is None and isinstance(iterator, AsyncGenerator):
            # Closed (client gone) with an output read but the iterator not finished: close it now, which
            # aborts the request, rather than whenever it is garbage-collected. (Asking for exception()
            # also marks a finished stream's StopAsyncIteration as seen, which asyncio would log as an
            # error otherwise.)
            await iterator.aclose()
