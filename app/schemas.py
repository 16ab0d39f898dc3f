"""Request and response bodies: TGI's for generation, TEI's for /embed, ours for /attention.

Strict types (a string is never coerced to a number, nor 1 to true) and no NaN or infinity.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")


class ErrorResponse(BaseModel):
    error: str
    error_type: Literal["validation", "overloaded", "generation", "unhealthy", "unauthorized", "not_found"]

    model_config = ConfigDict(json_schema_extra={
        "examples": [{"error": "`parameters.top_p` must be > 0 and <= 1", "error_type": "validation"}]})


class GenerateParameters(BaseModel):
    model_config = STRICT

    max_new_tokens: int | None = Field(None, ge=1, description="tokens to generate (default from the server)")
    temperature: float | None = Field(None, gt=0, description="> 0; turns sampling on when not 1")
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0)
    do_sample: bool = False
    seed: int | None = Field(None, ge=0, lt=2**63)
    stop: list[str] = Field(default_factory=list, description="stop sequences (kept in the text, as TGI does)")
    return_full_text: bool | None = False
    details: bool = False
    decoder_input_details: bool = False
    top_n_tokens: int | None = Field(None, ge=0)
    truncate: int | None = Field(None, ge=1, description="keep only the last N prompt tokens")
    # Accepted for TGI client compatibility; a value other than the default is refused with 422.
    typical_p: float | None = None
    best_of: int | None = None
    watermark: bool = False
    grammar: Any | None = None
    adapter_id: str | None = None
    frequency_penalty: float | None = None
    ignore_eos: bool = Field(False, description="keep generating after EOS (benchmarks)")

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, v: list[str]) -> list[str]:
        if any(s == "" for s in v):
            raise ValueError("stop sequences must not be empty")
        return v


class GenerateRequest(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", json_schema_extra={
        "examples": [{"inputs": "ROMEO:", "parameters": {"max_new_tokens": 20, "details": True}}]})

    inputs: str = Field(description="the prompt")
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    stream: bool = False


class Token(BaseModel):
    id: int
    text: str
    logprob: float | None
    special: bool


class PrefillToken(BaseModel):
    id: int
    text: str
    logprob: float | None


class Details(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence", "time_limit"]
    generated_tokens: int
    seed: int | None
    prefill: list[PrefillToken] = Field(default_factory=list)
    tokens: list[Token] = Field(default_factory=list)
    top_tokens: list[list[Token]] = Field(default_factory=list)
    best_of_sequences: None = None


class GenerateResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"generated_text": " Good morrow, sir."}]})

    generated_text: str
    details: Details | None = None


class StreamDetails(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence", "time_limit"]
    generated_tokens: int
    seed: int | None
    input_length: int


class StreamResponse(BaseModel):
    index: int
    token: Token
    top_tokens: list[Token] | None = None
    generated_text: str | None = None
    details: StreamDetails | None = None


class EmbedRequest(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", json_schema_extra={
        "examples": [{"inputs": ["What is love?", "A rose by any other name"], "normalize": True}]})

    inputs: str | list[str]
    normalize: bool = True
    truncate: bool = False
    truncation_direction: Literal["right", "left", "Right", "Left"] = "right"


class AttentionRequest(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", json_schema_extra={
        "examples": [{"inputs": "To be, or not to be", "layers": [0], "heads": None, "aggregate": "none"}]})

    inputs: str
    layers: list[int] | None = Field(None, description="layer indices (default: all)")
    heads: list[int] | None = Field(None, description="head indices (default: all)")
    aggregate: Literal["none", "mean_heads"] = "none"


class TokenSpan(BaseModel):
    id: int
    text: str
    start: int
    stop: int


class AttentionResponse(BaseModel):
    tokens: list[TokenSpan]
    num_layers: int
    num_heads: int
    causal: bool
    layers: list[int]
    heads: list[int]
    aggregate: Literal["none", "mean_heads"]
    attentions: list[list[list[list[float]]]] = Field(description="[layer][head][query][key]; rows sum to 1")


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    inputs: str
    add_special_tokens: bool = True


class Info(BaseModel):
    model_id: str
    model_type: str
    model_dtype: str
    model_device_type: str
    causal: bool
    can_generate: bool
    num_parameters: int
    max_input_tokens: int
    max_total_tokens: int
    max_batch_size: int
    max_batch_prefill_tokens: int
    max_concurrent_requests: int
    max_client_batch_size: int
    max_stop_sequences: int
    max_best_of: int
    version: str
