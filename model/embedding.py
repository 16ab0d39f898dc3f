"""Token embeddings and the two positional encodings (sinusoidal and learned)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TokenEmbedding(nn.Module):
    """Token id -> dense vector: a lookup table of shape (vocab_size, d_model)."""

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, idx: Tensor) -> Tensor:  # (B, T) -> (B, T, C)
        return nn.functional.embedding(idx, self.weight)


def sinusoidal_table(max_len: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (T, 1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq)
    return table.float()


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal encodings, looked up by each token's own position."""

    table: Tensor

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        # Not saved in checkpoints: it is a function of the config, rebuilt on load.
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, positions: Tensor) -> Tensor:  # (B, T) -> (B, T, C)
        return nn.functional.embedding(positions, self.table)


class LearnedPositions(nn.Module):
    """A trained table of position vectors (GPT-2, BERT)."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, positions: Tensor) -> Tensor:  # (B, T) -> (B, T, C)
        return nn.functional.embedding(positions, self.weight)
