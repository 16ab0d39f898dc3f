"""A slot-based KV cache for batched incremental decoding.

Each running sequence owns one slot (a row of the cache); its keys and values are
stored at their absolute positions, so sequences of different lengths share a
batch without left padding. A batch that is a contiguous range of slots reads the
cache as a zero-copy slice (so the engine keeps its slots compact); any other set
of slots is gathered. Prompts are prefilled packed: their tokens one after another
in a single row, each segment attending to its own slot (no padding at all).
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def view(self, rows: slice | Sequence[int], kv_len: int) -> CacheView:
        """The slots `rows`, attending over the first `kv_len` positions after this step's write."""
        if kv_len > self.max_seq_len:
            raise ValueError(f"kv_len {kv_len} exceeds the cache's {self.max_seq_len} positions")
        if not isinstance(rows, slice):
            rows = list(rows)
            if rows == list(range(rows[0], rows[0] + len(rows))):
                rows = slice(rows[0], rows[0] + len(rows))
        slots = (torch.arange(rows.start, rows.stop) if isinstance(rows, slice) else torch.tensor(rows))
        return CacheView(self, rows, kv_len, slots.to(self.k.device))

    def packed(self, slots: Sequence[int], starts: Sequence[int], lengths: Sequence[int]) -> PackedView:
        """Segments of several sequences packed into one row: segment i is `lengths[i]` tokens of
        slot `slots[i]` from position `starts[i]`."""
        segments = tuple(Segment(n, slot, start) for slot, start, n in zip(slots, starts, lengths, strict=True))
        for seg in segments:
            if seg.length < 1 or seg.start < 0 or seg.start + seg.length > self.max_seq_len:
                raise ValueError(f"segment {seg} does not fit the cache's {self.max_seq_len} positions")
            if not 0 <= seg.slot < self.max_batch:
                raise ValueError(f"slot {seg.slot} is not one of the cache's {self.max_batch}")
        token_slots = torch.tensor([seg.slot for seg in segments for _ in range(seg.length)])
        return PackedView(segments, self, token_slots.unsqueeze(0).to(self.k.device))

    def move_slot(self, src: int, dst: int, length: int) -> None:
        """Copy a sequence's first `length` positions to another slot (to keep slots compact)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]

    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()


@dataclass(frozen=True)
class CacheView:
    cache: KVCache
    rows: slice | list[int]
    kv_len: int
    slots: Tensor  # (B,) the cache row of each batch row

    def write(self, layer: int, positions: Tensor, k: Tensor, v: Tensor) -> None:
        """Write this step's keys/values (B, nh, T, hs) at `positions` (B, T)."""
        slots = self.slots.unsqueeze(1).expand_as(positions)  # (B, T)
        # Advanced indices on dims 0 and 2 put (B, T) first: the values are (B, T, nh, hs).
        self.cache.k[layer][slots, :, positions] = k.transpose(1, 2)
        self.cache.v[layer][slots, :, positions] = v.transpose(1, 2)

    def update(self, layer: int, positions: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write this step's keys/values; return the visible past (B, nh, S, hs)."""
        self.write(layer, positions, k, v)
        k_all, v_all = self.cache.k[layer], self.cache.v[layer]  # (max_batch, nh, S_max, hs)
        rows = self.rows if isinstance(self.rows, slice) else self.slots
        return k_all[rows, :, : self.kv_len], v_all[rows, :, : self.kv_len]


@dataclass(frozen=True)
class Segment:
    length: int
    slot: int = 0  # with a cache: the cache row it continues
    start: int = 0  # with a cache: the position of its first token (the slot's cached length)


@dataclass(frozen=True)
class PackedView:
    """Several sequences one after another in one row of tokens (1, N), N the sum of their lengths,
    each attending only to itself. With a cache (prefill), each segment's keys and values go into
    its slot after that slot's cached past, which it attends to as well."""

    segments: tuple[Segment, ...]
    cache: KVCache | None = None
    token_slots: Tensor | None = None  # (1, N) with a cache: each token's slot

    @staticmethod
    def of(lengths: Sequence[int]) -> PackedView:
        """Whole sequences, no cache (an encoder's batch)."""
        return PackedView(tuple(Segment(n) for n in lengths))

    def write(self, layer: int, positions: Tensor, k: Tensor, v: Tensor) -> None:
        """Write the keys/values (1, nh, N, hs) at `positions` (1, N), each token into its own slot."""
        assert self.cache is not None and self.token_slots is not None
        self.cache.k[layer][self.token_slots, :, positions] = k.transpose(1, 2)
        self.cache.v[layer][self.token_slots, :, positions] = v.transpose(1, 2)

    def past(self, layer: int, seg: Segment) -> tuple[Tensor, Tensor]:
        """One segment's visible keys/values (1, nh, start + length, hs), read in place."""
        assert self.cache is not None
        end = seg.start + seg.length
        return (self.cache.k[layer, seg.slot:seg.slot + 1, :, :end],
                self.cache.v[layer, seg.slot:seg.slot + 1, :, :end])
