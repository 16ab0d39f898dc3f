"""Helpers shared by the model/ tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor, nn

from model import ModelConfig, Transformer
from model.embedding import LearnedPositions, sinusoidal_table

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare.txt"
EOS = "<|endoftext|>"

# A small decoder for tests: sinusoidal positions, ReLU, pre-LN, tied head (the seed's architecture).
TINY = ModelConfig(vocab_size=97, max_seq_len=64, d_model=32, n_layers=2, n_heads=4, d_ff=64)

# Used when the shared corpus is not on this machine; enough text to train a tiny BPE.
FALLBACK_TEXT = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.

All:
We know't, we know't.

First Citizen:
Let us kill him, and we'll have corn at our own price.
Is't a verdict?
"""

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def randomize_(module: ModuleT, seed: int, std: float = 0.1) -> ModuleT:
    """Overwrite matrices with N(0, std) and add N(0, std) to vectors (biases, norm gains/shifts).

    GPT-2's N(0, 0.02) init with zero biases makes a random model's output nearly constant
    (greedy decoding repeats one token) and hides mistakes with biases or norm parameters.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen) * std
            if p.dim() >= 2:
                p.copy_(noise)
            else:
                p.add_(noise)
    return module


def make_model(cfg: ModelConfig = TINY, seed: int = 2) -> Transformer:
    """A Transformer with non-degenerate random weights, in eval mode.

    (Seed 2 because a tied random model easily falls into repeating one token under greedy
    decoding; with this seed the tiny models' continuations vary, so token checks mean something.)"""
    torch.manual_seed(seed)
    return randomize_(Transformer(cfg), seed).eval()


def position_table(model: Transformer) -> Tensor:
    """The (max_seq_len, d_model) table the model adds to its token embeddings."""
    if isinstance(model.pos_emb, LearnedPositions):
        return model.pos_emb.weight
    return sinusoidal_table(model.cfg.max_seq_len, model.cfg.d_model)


def full_logits(model: Transformer, ids: list[int]) -> Tensor:
    """Logits (T, V) of one sequence by a plain forward pass (no cache)."""
    with torch.no_grad():
        return model.logits(model(torch.tensor([ids])).hidden)[0]


def random_ids(n: int, vocab_size: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return [int(t) for t in torch.randint(vocab_size, (n,), generator=gen)]
