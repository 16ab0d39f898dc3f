"""ModelConfig: one frozen dataclass describes every model attnserve can run.

The same parts build a causal decoder (GPT-2, the built-in default model) and a
bidirectional encoder (BERT); the fields below are exactly the knobs where those
architectures differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

PosEncoding = Literal["sinusoidal", "learned"]
Activation = Literal["relu", "gelu", "gelu_tanh"]
NormPosition = Literal["pre", "post"]
Pooling = Literal["mean", "cls", "max", "last"]


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 2048
    max_seq_len: int = 256  # context length; also the size of a sinusoidal or learned position table
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024  # hidden width of the feed-forward network, classically 4 * d_model
    causal: bool = True  # decoder (generation) when True, encoder (embeddings) when False
    pos_encoding: PosEncoding = "sinusoidal"
    scale_embeddings: bool = False  # multiply token embeddings by sqrt(d_model), as the paper does
    activation: Activation = "relu"
    norm_position: NormPosition = "pre"  # "pre": x + f(LN(x)) (GPT-2); "post": LN(x + f(x)) (the paper, BERT)
    final_norm: bool = True  # a LayerNorm after the last block (pre-LN models need it)
    embed_norm: bool = False  # a LayerNorm on the summed embeddings (BERT)
    type_vocab_size: int = 0  # BERT's segment embeddings; 0 means none
    tie_embeddings: bool = True  # the vocabulary head reuses the token embedding matrix
    lm_head: bool = True  # encoders loaded for embeddings have no vocabulary head
    bias: bool = True
    norm_eps: float = 1e-5
    dropout: float = 0.0  # only used while training
    pooling: Pooling = "mean"  # how /embed turns hidden states into one vector
    normalize_embeddings: bool = False  # L2-normalise pooled vectors (sentence-transformers' Normalize)
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.pos_encoding == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"sinusoidal positions need an even d_model, got {self.d_model}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    # For tests: builds and runs in milliseconds.
    "tiny": ModelConfig(vocab_size=512, max_seq_len=128, d_model=64, n_layers=2, n_heads=4, d_ff=256),
    # The built-in default model's shape (trained on Tiny Shakespeare on a 2-core CPU).
    # The paper's embedding scale keeps the sinusoids from drowning the small initial token vectors.
    "shakespeare": ModelConfig(
        vocab_size=2048, max_seq_len=256, d_model=256, n_layers=6, n_heads=8, d_ff=1024, dropout=0.1,
        scale_embeddings=True,
    ),
    # GPT-2 small's shape (124M parameters) in the seed's own architecture.
    "gpt2-small": ModelConfig(
        vocab_size=50257, max_seq_len=1024, d_model=768, n_layers=12, n_heads=12, d_ff=3072,
        pos_encoding="learned", activation="gelu_tanh",
    ),
}
