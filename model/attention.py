"""Scaled dot-product attention and multi-head self-attention."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import decode_attention
from .kv_cache import CacheView, PackedView


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                                 causal: bool = False) -> tuple[Tensor, Tensor]:
    """softmax(Q·Kᵀ/√d)·V, written out so the weights can be returned.

    q: (B, nh, T, hs), k and v: (B, nh, S, hs); mask: bool, broadcastable to (B, nh, T, S),
    True where a query may attend. Returns the output (B, nh, T, hs) and weights (B, nh, T, S).
    """
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, nh, T, S)
    if causal:
        T, S = scores.shape[-2:]
        scores = scores.masked_fill(~_causal_mask(T, S, scores.device), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.float().softmax(dim=-1).to(q.dtype)
    return weights @ v, weights


def _causal_mask(T: int, S: int, device: torch.device) -> Tensor:
    # Queries are the last T of S positions: query i sees keys up to S - T + i.
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def packed_attention(q: Tensor, k: Tensor, v: Tensor, packed: PackedView, layer: int, causal: bool) -> Tensor:
    """Each packed segment's queries against its own keys only (and its cached past, with a cache).

    q, k, v: (1, nh, N, hs), the segments one after another; returns (1, nh, N, hs).
    """
    outputs, offset = [], 0
    for seg in packed.segments:
        part = slice(offset, offset + seg.length)
        k_seg, v_seg = (k[:, :, part], v[:, :, part]) if packed.cache is None else packed.past(layer, seg)
        q_seg = q[:, :, part]
        if not causal or seg.start == 0:
            outputs.append(F.scaled_dot_product_attention(q_seg, k_seg, v_seg, is_causal=causal))
        else:  # a later chunk: its queries are the last `length` of `start + length` positions
            mask = _causal_mask(seg.length, seg.start + seg.length, q.device)
            outputs.append(F.scaled_dot_product_attention(q_seg, k_seg, v_seg, attn_mask=mask))
        offset += seg.length
    return torch.cat(outputs, dim=2)


class MultiHeadAttention(nn.Module):
    """Project to Q, K, V; split into heads; attend per head; concatenate; project back."""

    def __init__(self, d_model: int, n_heads: int, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, positions: Tensor, mask: Tensor | None, causal: bool,
                kv: CacheView | PackedView | None, layer: int,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, C // self.n_heads).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, nh, T, hs)
        weights = None
        if isinstance(kv, PackedView):  # packed sequences (never asked for weights)
            if kv.cache is not None:
                kv.write(layer, positions, k, v)
            y = packed_attention(q, k, v, kv, layer, causal)
        elif kv is not None and T == 1 and not need_weights and decode_attention.supports(q, kv.cache.k):
            # Decode on CPU: each row's query against its own slot's keys, read in place.
            kv.write(layer, positions, k, v)
            y = decode_attention.decode_attention(q, kv.cache.k[layer], kv.cache.v[layer], kv.slots,
                                                  positions[:, 0] + 1)  # key j is visible iff j <= position
        else:
            if kv is not None:
                k, v = kv.update(layer, positions, k, v)  # (B, nh, S, hs): the cached past plus this step
            if need_weights:
                y, weights = scaled_dot_product_attention(q, k, v, mask, causal)
            else:
                # Fused kernels (flash / memory-efficient on GPU); never materialises the T x S weights.
                # No dropout on the attention weights: it forces torch's slow path on CPU (2.5x per step).
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        y = y.transpose(1, 2).reshape(B, T, C)  # concatenate the heads: (B, T, C)
        return self.resid_dropout(self.proj(y)), weights
