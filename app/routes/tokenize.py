"""POST /tokenize (TGI's reply shape)."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import ServiceDep
from ..errors import ERROR_RESPONSES
from ..schemas import TokenizeRequest, TokenSpan

router = APIRouter(tags=["tokenize"])


@router.post("/tokenize", response_model=list[TokenSpan], responses=ERROR_RESPONSES)
async def tokenize(body: TokenizeRequest, service: ServiceDep) -> list[TokenSpan]:
    """The prompt's tokens with their character spans."""
    return service.spans(body.inputs, add_special_tokens=body.add_special_tokens)
