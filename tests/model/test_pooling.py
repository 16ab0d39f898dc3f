"""Sentence embeddings from token states, against per-sequence computations."""

from __future__ import annotations

import pytest
import torch

from model import embed, pool
from model.kv_cache import PackedView

from .helpers import TINY, make_model, random_ids

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


@pytest.mark.parametrize("method", ["mean", "cls", "max", "last"])
@pytest.mark.parametrize("causal", [False, True])
def test_packed_embed_equals_each_input_alone(method: str, causal: bool) -> None:
    # Packed into one row, every input must see only its own tokens: the same vector as alone.
    cfg = TINY.replace(causal=causal, pooling=method, pos_encoding="learned", norm_position="post",
                       tie_embeddings=False)
    model = make_model(cfg)
    inputs = [random_ids(n, cfg.vocab_size, 90 + n) for n in (7, 1, 12, 3)]
    with torch.no_grad():
        packed = embed(model, inputs)
        for row, ids in enumerate(inputs):
            alone = model(torch.tensor([ids])).hidden
            expected = pool(alone, torch.ones(1, len(ids)), method, normalize=False)  # type: ignore[arg-type]
            torch.testing.assert_close(packed[row], expected[0], atol=1e-5, rtol=0)


def test_embed_rejects_an_empty_input() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        embed(make_model(), [[1, 2], []])


def test_a_packed_batch_refuses_a_key_mask_or_attention_weights() -> None:
    model = make_model(TINY.replace(causal=False))
    idx = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="packed batch"):
        model(idx, cache=PackedView.of([1, 2]), need_weights=True)
    with pytest.raises(ValueError, match="packed batch"):
        model(idx, key_mask=torch.ones(1, 3, dtype=torch.bool), cache=PackedView.of([1, 2]))
