"""One transformer block: attention and feed-forward, each wrapped in LayerNorm and a residual."""

from __future__ import annotations

from torch import Tensor, nn

from .attention import MultiHeadAttention
from .config import ModelConfig
from .feedforward import FeedForward
from .kv_cache import CacheView, PackedView
from .norm import LayerNorm


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.pre_norm = cfg.norm_position == "pre"
        self.ln_1 = LayerNorm(cfg.d_model, cfg.norm_eps, cfg.bias)
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.bias, cfg.dropout)
        self.ln_2 = LayerNorm(cfg.d_model, cfg.norm_eps, cfg.bias)
        self.mlp = FeedForward(cfg.d_model, cfg.d_ff, cfg.activation, cfg.bias, cfg.dropout)

    def forward(self, x: Tensor, positions: Tensor, mask: Tensor | None, causal: bool,
                kv: CacheView | PackedView | None, layer: int, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        if self.pre_norm:  # GPT-2: x + f(LN(x))
            a, weights = self.attn(self.ln_1(x), positions, mask, causal, kv, layer, need_weights)
            x = x + a
            x = x + self.mlp(self.ln_2(x))
        else:  # "Attention Is All You Need", BERT: LN(x + f(x))
            a, weights = self.attn(x, positions, mask, causal, kv, layer, need_weights)
            x = self.ln_1(x + a)
            x = self.ln_2(x + self.mlp(x))
        return x, weights
