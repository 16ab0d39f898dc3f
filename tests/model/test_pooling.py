"""Sentence embeddings from token states, against per-sequence computations."""

from __future__ import annotations

import pytest
import torch

from model import pool

HIDDEN = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0)) * 2
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
LENGTHS = [5, 2, 3]


@pytest.mark.parametrize("method", ["mean", "cls", "max", "last"])
@pytest.mark.parametrize("normalize", [False, True])
def test_pool_uses_only_real_tokens(method: str, normalize: bool) -> None:
    out = pool(HIDDEN, MASK, method, normalize)  # type: ignore[arg-type]
    assert out.shape == (3, 8) and out.dtype == torch.float32
    for row, n in enumerate(LENGTHS):
        real = HIDDEN[row, :n]
        expected = {"mean": real.mean(0), "cls": real[0], "max": real.max(0).values, "last": real[-1]}[method]
        if normalize:
            expected = expected / expected.norm()
        torch.testing.assert_close(out[row], expected)


def test_padding_values_do_not_leak() -> None:
    noisy = HIDDEN.clone()
    noisy[MASK == 0] = 1e6
    for method in ("mean", "max", "last"):
        torch.testing.assert_close(pool(noisy, MASK, method, False), pool(HIDDEN, MASK, method, False))  # type: ignore[arg-type]


def test_bool_mask_and_half_precision() -> None:
    out = pool(HIDDEN.bfloat16(), MASK.bool(), "mean", True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))
