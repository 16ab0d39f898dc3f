"""Decode attention on CPU: each sequence's one new query against its own cached keys and values.

torch has no CPU kernel for this that reads the cache in place. Its fused kernel and the
two-matmul form read every row up to the longest row's length, and in bf16 oneDNN's matmul
first copies the cache's strided view (three passes over it). This kernel, compiled by numba,
reads each row's keys and values once, only up to that row's own length, and accumulates in
fp32. GPT-2-small, 32 rows of 71-190 positions, 12 layers, 2 cores: 14-16 ms against SDPA's 26
(fp32), 10 ms against the copies and matmuls' 25 (bf16); its decode step at 32 rows 77 -> 65 ms
(fp32), 53 -> 41 ms (bf16). numba is optional: without it attention runs on torch's own kernels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

try:
    import numba
    from numba.extending import overload

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency; the model still runs without it
    HAVE_NUMBA = False

CACHED_DTYPES = {torch.float32: np.float32, torch.bfloat16: np.uint16}  # bf16 travels as its bits
# Below this many rows torch's kernel wins by its lower cost per call (about 20 us per layer): GPT-2-small
# and the default model break even at 4-8 rows; at 1 row the default model's step is 0.2-0.3 ms slower.
MIN_ROWS = 8


def supports(q: Tensor, cache_k: Tensor) -> bool:
    """Whether decode_attention should run for these queries (B, nh, 1, hs) and this cache."""
    return HAVE_NUMBA and q.device.type == "cpu" and cache_k.dtype in CACHED_DTYPES and q.shape[0] >= MIN_ROWS


def decode_attention(q: Tensor, cache_k: Tensor, cache_v: Tensor, slots: Tensor, lengths: Tensor) -> Tensor:
    """softmax(q·Kᵀ/√d)·V per row over its slot's first `lengths[b]` positions.

    q: (B, nh, 1, hs); cache_k, cache_v: one layer's cache (max_batch, nh, S_max, hs);
    slots, lengths: (B,) the cache row of each batch row and how many positions it attends to.
    Returns (B, nh, 1, hs) in q's dtype.
    """
    if not q.shape[0] == slots.shape[0] == lengths.shape[0]:
        raise ValueError(f"{q.shape[0]} queries, {slots.shape[0]} slots and {lengths.shape[0]} lengths")
    q32 = q[:, :, 0].float().contiguous()  # (B, nh, hs)
    out = np.empty(q32.shape, dtype=np.float32)
    # As many threads as torch uses, so the two take turns on the same cores.
    numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    _attend(q32.numpy(), _as_numpy(cache_k), _as_numpy(cache_v), slots.numpy(), lengths.numpy(),
            np.float32(1 / math.sqrt(q.size(-1))), out)
    return torch.from_numpy(out).to(q.dtype).unsqueeze(2)


def warmup(dtype: torch.dtype) -> None:
    """Compile the kernel for a cache of this dtype now, not in the first big batch's step (1-3 s)."""
    if HAVE_NUMBA and dtype in CACHED_DTYPES:
        one, cache = torch.ones(1, dtype=torch.long), torch.zeros(1, 1, 1, 1, dtype=dtype)
        decode_attention(torch.zeros(1, 1, 1, 1, dtype=dtype), cache, cache, one - 1, one)


def _as_numpy(cache: Tensor) -> Any:
    if cache.dtype == torch.bfloat16:
        return cache.view(torch.int16).numpy().view(np.uint16)
    return cache.numpy()


def _as_f32(row: Any, bits: Any, floats: Any) -> Any:
    """A row of cached values as float32; bf16 goes through `bits` (uint32), `floats` views them."""
    raise NotImplementedError


if HAVE_NUMBA:
    # Prefer OpenMP. numba's layer loads the system libgomp, not the copy torch bundles, so these are
    # threads of their own; they idle between calls and ran the kernel faster than numba's
    # workqueue threads (bf16 step at 32 rows 44 against 55 ms).
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]  # type: ignore[attr-defined]

    @overload(_as_f32, inline="always")  # type: ignore[untyped-decorator]
    def _as_f32_impl(row: Any, bits: Any, floats: Any) -> Any:
        if row.dtype == numba.types.uint16:
            def widen(row: Any, bits: Any, floats: Any) -> Any:  # bf16 is the top half of an fp32
                for d in range(row.size):
                    bits[d] = np.uint32(row[d]) << 16
                return floats
            return widen

        def same(row: Any, bits: Any, floats: Any) -> Any:
            return row
        return same

    # nogil: like torch's own kernels, let the event loop's thread run meanwhile (it streams tokens).
    @numba.njit(parallel=True, fastmath=True, nogil=True)  # type: ignore[untyped-decorator]
    def _attend(q: Any, k: Any, v: Any, slots: Any, lengths: Any, scale: Any, out: Any) -> None:
        B, nh, hs = q.shape
        for b in range(B):  # compiled code reads without bounds checks
            if not (0 <= slots[b] < k.shape[0] and 1 <= lengths[b] <= k.shape[2]):
                raise ValueError("a slot or length outside the cache")
        for i in numba.prange(B * nh):  # one (row, head) per iteration
            b, h = i // nh, i % nh
            slot, n = slots[b], lengths[b]
            qs = q[b, h] * scale
            bits = np.empty(hs, dtype=np.uint32)
            floats = bits.view(np.float32)
            scores = np.empty(n, dtype=np.float32)
            for t in range(n):  # explicit loops: numba vectorizes them without temporaries
                key = _as_f32(k[slot, h, t], bits, floats)
                dot = np.float32(0.0)
                for d in range(hs):
                    dot += qs[d] * key[d]
                scores[t] = dot
            scores = np.exp(scores - scores.max())
            acc = np.zeros(hs, dtype=np.float32)
            for t in range(n):
                value = _as_f32(v[slot, h, t], bits, floats)
                for d in range(hs):
                    acc[d] += scores[t] * value[d]
            out[b, h] = acc / scores.sum()
