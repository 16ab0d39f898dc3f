"""A slot-based KV cache for batched incremental decoding.

Each running sequence owns one slot (a row of the cache); its keys and values are
stored at their absolute positions, so sequences of different lengths share a
batch without left padding. A batch is always a contiguous range of slots, which
keeps the per-step view a zero-copy slice (the engine keeps its slots compact).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


class KVCache:
    def __init__(self, n_layers: int, n_heads: int, head_dim: int, max_batch: int, max_seq_len: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        shape = (n_layers, max_batch, n_heads, max_seq_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)

    @property
    def max_batch(self) -> int:
        return self.k.shape[1]

    @property
    def max_seq_len(self) -> int:
        return self.k.shape[3]

    def view(self, rows: slice, kv_len: int) -> CacheView:
        """The slots `rows`, attending over the first `kv_len` positions after this step's write."""
        if kv_len > self.max_seq_len:
            raise ValueError(f"kv_len {kv_len} exceeds the cache's {self.max_seq_len} positions")
        return CacheView(self, rows, kv_len)

    def move_slot(self, src: int, dst: int, length: int) -> None:
        """Copy a sequence's first `length` positions to another slot (to keep slots compact)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]

    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()


@dataclass(frozen=True)
class CacheView:
    cache: KVCache
    rows: slice
    kv_len: int

    def update(self, layer: int, positions: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write this step's keys/values at `positions` (B, T); return the visible past (B, nh, S, hs)."""
        k_rows = self.cache.k[layer, self.rows]  # (B, nh, S_max, hs), a view
        v_rows = self.cache.v[layer, self.rows]
        batch = torch.arange(k.shape[0], device=k.device).unsqueeze(1).expand_as(positions)  # (B, T)
        # Advanced indices on dims 0 and 2 put (B, T) first: the values are (B, T, nh, hs).
        k_rows[batch, :, positions] = k.transpose(1, 2).to(k_rows.dtype)
        v_rows[batch, :, positions] = v.transpose(1, 2).to(v_rows.dtype)
        return k_rows[:, :, : self.kv_len], v_rows[:, :, : self.kv_len]
