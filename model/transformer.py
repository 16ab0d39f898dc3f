"""The Transformer: embeddings -> blocks -> final LayerNorm -> vocabulary head.

The same class is a causal decoder (`cfg.causal`) or a bidirectional encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .block import Block
from .config import ModelConfig
from .embedding import LearnedPositions, SinusoidalPositions, TokenEmbedding
from .kv_cache import CacheView, KVCache, PackedView
from .norm import LayerNorm


@dataclass
class TransformerOutput:
    hidden: Tensor  # (B, T, C), after the final LayerNorm
    attentions: list[Tensor] | None  # per layer (B, nh, T, S), post-softmax; only when asked


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = TokenEmbedding(cfg.vocab_size, cfg.d_model)
        positions = SinusoidalPositions if cfg.pos_encoding == "sinusoidal" else LearnedPositions
        self.pos_emb = positions(cfg.max_seq_len, cfg.d_model)
        self.type_emb = nn.Embedding(cfg.type_vocab_size, cfg.d_model) if cfg.type_vocab_size else None
        self.emb_norm = LayerNorm(cfg.d_model, cfg.norm_eps, cfg.bias) if cfg.embed_norm else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = LayerNorm(cfg.d_model, cfg.norm_eps, cfg.bias) if cfg.final_norm else None
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False) if cfg.lm_head else None
        self.apply(_init_weights)
        if self.lm_head is not None and cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def forward(self, idx: Tensor, positions: Tensor | None = None, key_mask: Tensor | None = None,
                cache: CacheView | PackedView | None = None, need_weights: bool = False) -> TransformerOutput:
        """Run the blocks over token ids.

        idx: (B, T) token ids. positions: (B, T) absolute positions (default 0..T-1).
        key_mask: (B, T) True for real tokens of a right-padded batch (encoders need it;
        decoders mask by position). cache: where this step's keys/values go and which past
        they attend to. A PackedView makes idx (1, N) several sequences (or prompt chunks) one
        after another, each attending only to itself (no padding). need_weights: also return every
        layer's attention weights.
        """
        if isinstance(cache, PackedView) and (need_weights or key_mask is not None):
            raise ValueError("a packed batch takes no key_mask and returns no attention weights")
        B, T = idx.shape
        if positions is None:
            positions = torch.arange(T, device=idx.device).expand(B, T)
        tokens = self.tok_emb(idx)  # (B, T, C)
        if self.cfg.scale_embeddings:
            tokens = tokens * math.sqrt(self.cfg.d_model)
        x = tokens + self.pos_emb(positions)
        if self.type_emb is not None:  # single-segment input: every token is type 0
            x = x + self.type_emb.weight[0]
        if self.emb_norm is not None:
            x = self.emb_norm(x)
        x = self.drop(x)
        mask, causal = self._mask(positions, key_mask, cache)
        attentions: list[Tensor] | None = [] if need_weights else None
        for layer, block in enumerate(self.blocks):
            x, weights = block(x, positions, mask, causal, cache, layer, need_weights)
            if attentions is not None and weights is not None:
                attentions.append(weights)
        if self.ln_f is not None:
            x = self.ln_f(x)
        return TransformerOutput(x, attentions)

    def _mask(self, positions: Tensor, key_mask: Tensor | None,
              cache: CacheView | PackedView | None) -> tuple[Tensor | None, bool]:
        """A bool mask (B, 1, T, S), True where query may attend key; or the plain causal flag."""
        if isinstance(cache, PackedView):
            return None, self.cfg.causal  # each segment attends to itself alone
        if self.cfg.causal and cache is None and key_mask is None:
            return None, True  # training and unpadded prompts: let the kernel build the triangle
        mask: Tensor | None = None
        if self.cfg.causal:  # key j is visible to the query at position p iff j <= p
            S = cache.kv_len if cache is not None else positions.shape[1]
            keys = torch.arange(S, device=positions.device)
            mask = keys.view(1, 1, 1, S) <= positions[:, None, :, None]
        if key_mask is not None:
            padding = key_mask[:, None, None, :].bool()
            mask = padding if mask is None else mask & padding
        return mask, False

    def logits(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits (..., V); apply softmax for probabilities."""
        if self.lm_head is None:
            raise ValueError("this model has no vocabulary head (an encoder loaded for embeddings)")
        logits: Tensor = self.lm_head(hidden)
        return logits

    def new_cache(self, max_batch: int, max_seq_len: int | None = None) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.cfg.n_layers, self.cfg.n_heads, self.cfg.head_dim, max_batch,
                       max_seq_len or self.cfg.max_seq_len, p.device, p.dtype)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _init_weights(module: nn.Module) -> None:
    # GPT-2's initialisation: N(0, 0.02) for weights, zeros for biases.
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
