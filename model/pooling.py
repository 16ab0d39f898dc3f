"""Pooling token states into one vector per sequence, as sentence-transformers does."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence

from .config import Pooling
from .kv_cache import PackedView
from .transformer import Transformer


def pool(hidden: Tensor, mask: Tensor, method: Pooling, normalize: bool) -> Tensor:
    """hidden: (B, T, C); mask: (B, T), 1 for real tokens (right-padded). Returns (B, C)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if method == "mean":
        out = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    elif method == "cls":
        out = hidden[:, 0]
    elif method == "max":
        out = hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    else:  # "last": the last real token, for decoders
        last = mask.long().sum(dim=1) - 1
        out = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return F.normalize(out.float(), dim=-1) if normalize else out.float()


def embed(model: Transformer, inputs: Sequence[Sequence[int]]) -> Tensor:
    """One pooled, un-normalised fp32 vector per token-id list (B, C).

    The inputs run packed into one row, not padded to the longest: a 64-sentence batch of our
    benchmark's mixed lengths, even grouped by length, computed 24% padding.
    """
    lengths = [len(ids) for ids in inputs]
    if min(lengths) == 0:
        raise ValueError("every input needs at least one token")
    device = next(model.parameters()).device
    idx = torch.tensor([[t for ids in inputs for t in ids]], device=device)  # (1, N)
    positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0).to(device)  # each from 0
    hidden = model(idx, positions, cache=PackedView.of(lengths)).hidden[0]  # (N, C)
    padded = pad_sequence(list(hidden.split(lengths)), batch_first=True)  # (B, T, C) for the pooling
    mask = torch.arange(padded.shape[1], device=device) < torch.tensor(lengths, device=device).unsqueeze(1)
    return pool(padded, mask, model.cfg.pooling, normalize=False)
