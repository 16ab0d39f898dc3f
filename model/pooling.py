"""Pooling token states into one vector per sequence, as sentence-transformers does."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .config import Pooling


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
