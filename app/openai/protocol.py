"""OpenAI's request and reply bodies for /v1/models, /v1/completions, /v1/chat/completions, /v1/embeddings.

Requests follow OpenAI's ranges (temperature 0..2, logprobs 0..5) and accept vLLM's common extras
(top_k, repetition_penalty, ignore_eos). Parameters this server cannot honour are accepted when left
at their defaults and refused by the adapter otherwise, so a client that sends every field still works.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Strict as the native bodies (no "5" for 5), but unknown fields are ignored as vLLM does.
REQUEST = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
SEED_MAX = 2**63


class StreamOptions(BaseModel):
    model_config = REQUEST

    include_usage: bool | None = False

    def wanted(self) -> bool:
        return bool(self.include_usage)


class SamplingFields(BaseModel):
    """The sampling and stopping fields that completions and chat share. Optional fields are nullable,
    as in OpenAI's own spec: some clients send every field, unset ones as null."""

    model_config = REQUEST

    model: str | None = Field(None, description="any name is accepted; replies carry the served model's id")
    temperature: float | None = Field(None, ge=0, le=2, description="0 is greedy; default 1 (sampling)")
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(1, ge=1, le=128, description="choices per prompt")
    stop: str | list[str] | None = Field(None, description="up to 4 strings; cut from the returned text")
    seed: int | None = Field(None, ge=0, lt=SEED_MAX)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    # vLLM's extras
    top_k: int | None = Field(None, ge=-1, description="vLLM extra: -1 or 0 keeps all")
    repetition_penalty: float | None = Field(None, gt=0, description="vLLM extra")
    ignore_eos: bool | None = Field(False, description="vLLM extra: keep generating after EOS")

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        if v == "" or (isinstance(v, list) and any(s == "" for s in v)):
            raise ValueError("stop sequences must not be empty")
        return v

    def choices(self) -> int:
        return self.n or 1

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.wanted()


class CompletionRequest(SamplingFields):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", json_schema_extra={
        "examples": [{"model": "attnserve-default", "prompt": "ROMEO:", "max_tokens": 16, "temperature": 0}]})

    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="a string, a list of strings, or token ids (a list, or a list of lists)")
    max_tokens: int | None = Field(16, ge=0, description="default 16; 0 with echo scores the prompt")
    logprobs: int | None = Field(None, ge=0, le=5, description="log-probabilities of the k likeliest tokens")
    echo: bool | None = False
    best_of: int | None = Field(None, ge=1)
    suffix: str | None = None

class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    # Extra fields (tool_calls, ...) are kept: a template may read them.
    model_config = ConfigDict(strict=True, extra="allow")

    role: str
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str | None:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content


class ChatCompletionRequest(SamplingFields):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", json_schema_extra={
        "examples": [{"model": "attnserve-default", "messages": [{"role": "user", "content": "Hello"}],
                      "max_tokens": 32}]})

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, description="deprecated by OpenAI for max_completion_tokens")
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None

class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", json_schema_extra={
        "examples": [{"model": "attnserve-default", "input": ["What is love?"], "encoding_format": "float"}]})

    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="keep the first N dimensions, then re-normalise")
    user: str | None = None


# ---- replies ---------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


FinishReason = Literal["stop", "length"]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason | None = None


class CompletionResponse(BaseModel):
    """A whole completion, and (with object "text_completion" too) each streamed chunk."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: Delta
    logprobs: ChatLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "attnserve"
    max_model_len: int | None = Field(None, description="context length (vLLM's extra field)")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
