"""Settings: the service's one configuration class (flags and ATTNSERVE_* environment variables)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATTNSERVE_", env_ignore_empty=True, extra="ignore",
                                      cli_kebab_case=True, cli_implicit_flags=True, protected_namespaces=())

    # What to serve and where
    model: Path | None = Field(None, description="model folder; unset = the built-in default model")
    model_id: str | None = Field(None, description="name reported by /info and /v1/models")
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = Field("auto", description="auto (CUDA when available), cpu, cuda, cuda:N")
    dtype: str = Field("auto", description="auto (bf16/fp16 on GPU, fp32 on CPU), float32, bfloat16, float16")
    torch_threads: int | None = Field(None, description="torch CPU threads (default: torch's choice)")
    warmup: bool = True
    cpu_prepack: bool = Field(True, description="oneDNN-prepacked linear layers on CPU (faster matmuls)")

    # Continuous batching (generation)
    max_batch_size: int = Field(32, ge=1, description="sequences decoded together in one step")
    max_batch_prefill_tokens: int = Field(1024, ge=16, description="prompt tokens prefilled per step")
    max_input_tokens: int | None = Field(None, description="prompt cap; default: the context minus 1")
    max_total_tokens: int | None = Field(None, description="prompt + new tokens cap; default: the context")
    default_max_new_tokens: int = Field(100, ge=1)
    max_top_n_tokens: int = Field(5, ge=0)
    max_stop_sequences: int = Field(4, ge=0)
    max_stop_length: int = Field(64, ge=1, description="characters per stop sequence")

    # Admission: past these, requests get 429 with Retry-After
    max_queue_size: int = Field(128, ge=1, description="requests waiting for the engine")
    max_queued_tokens: int = Field(131072, ge=1, description="prompt + max_new tokens of waiting requests")

    # Dynamic batching (/embed, /attention)
    embed_max_batch_size: int = Field(64, ge=1, description="inputs per /embed or /attention forward")
    embed_max_batch_tokens: int = Field(16384, ge=16)
    embed_max_wait_ms: float = Field(2.0, ge=0)
    max_client_batch_size: int = Field(64, ge=1, description="inputs per /embed call")
    attention_max_tokens: int = Field(512, ge=1, description="sequence cap of /attention")

    # Reliability
    max_body_bytes: int = Field(2_000_000, ge=1024)
    request_timeout_s: float | None = Field(None, gt=0, description="generation deadline per request")
    stream_keepalive_s: float = Field(10.0, gt=0)
    stall_timeout_s: float = Field(60.0, gt=0, description="/health turns 503 if a step takes longer")
    drain_timeout_s: float = Field(30.0, ge=0)

    # Access and logs
    api_key: str | None = Field(None, description="comma-separated keys for Authorization: Bearer")
    api_key_file: Path | None = None
    cors_origins: list[str] = Field(default_factory=list)
    log_level: str = "info"
    log_prompts: bool = False

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        allowed = {"auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"}
        if v not in allowed:
            raise ValueError(f"dtype must be one of {sorted(allowed)}")
        return v

    def api_keys(self) -> list[str]:
        keys = [k.strip() for k in (self.api_key or "").split(",") if k.strip()]
        if self.api_key_file is not None:
            keys += [k.strip() for k in self.api_key_file.read_text().splitlines() if k.strip()]
        return keys


@lru_cache
def get_settings() -> Settings:
    return Settings()
