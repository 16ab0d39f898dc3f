"""POST /embed (TEI's route and body)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import ServiceDep
from ..errors import ERROR_RESPONSES
from ..schemas import EmbedRequest

router = APIRouter(tags=["embeddings"])


@router.post("/embed", response_model=list[list[float]], responses={**ERROR_RESPONSES, 200: {
    "description": "One vector per input", "content": {"application/json": {"example": [[0.01, -0.2, 0.13]]}}}})
async def embed(body: EmbedRequest, service: ServiceDep, request: Request) -> list[list[float]]:
    """One embedding per input text, pooled as the model defines (TEI's /embed)."""
    vectors = await service.embed(body)
    request.state.log_fields = {"inputs": len(vectors)}
    return vectors
