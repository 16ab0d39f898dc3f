"""POST /attention: every layer's and head's attention weights for a text."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import ServiceDep
from ..errors import ERROR_RESPONSES
from ..schemas import AttentionRequest, AttentionResponse

router = APIRouter(tags=["attention"])


@router.post("/attention", response_model=AttentionResponse, responses=ERROR_RESPONSES)
async def attention(body: AttentionRequest, service: ServiceDep) -> AttentionResponse:
    """Post-softmax attention, [layer][head][query][key]; each row sums to 1."""
    return await service.attention(body)
