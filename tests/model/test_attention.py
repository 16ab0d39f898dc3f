"""Attention against torch: F.scaled_dot_product_attention and nn.MultiheadAttention with copied weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from model import ModelConfig
from model.attention import MultiHeadAttention, scaled_dot_product_attention

from .helpers import TINY, make_model


def _qkv(B: int, nh: int, T: int, S: int, hs: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(B, nh, T, hs, generator=gen), torch.randn(B, nh, S, hs, generator=gen),
            torch.randn(B, nh, S, hs, generator=gen))


def test_matches_the_formula() -> None:
    q, k, v = _qkv(2, 3, 5, 5, 8)
    out, weights = scaled_dot_product_attention(q, k, v)
    expected_weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(out, expected_weights @ v)


@pytest.mark.parametrize("causal", [False, True])
def test_matches_torch_sdpa(causal: bool) -> None:
    q, k, v = _qkv(2, 4, 6, 6, 16)
    out, weights = scaled_dot_product_attention(q, k, v, causal=causal)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 6))
    if causal:
        assert torch.all(weights.triu(diagonal=1) == 0)
    else:
        assert torch.all(weights > 0)


def test_causal_queries_are_the_last_of_the_keys() -> None:
    # Decoding with a cache: T new queries at the end of S keys; query i sees keys 0..S-T+i.
    T, S = 3, 7
    q, k, v = _qkv(1, 2, T, S, 8)
    out, weights = scaled_dot_product_attention(q, k, v, causal=True)
    allowed = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    assert torch.all(weights[..., ~allowed] == 0) and torch.all(weights[..., allowed] > 0)
    # The last query sees every key, exactly as in a full forward pass.
    full_out, _ = scaled_dot_product_attention(q[:, :, -1:], k, v)
    torch.testing.assert_close(out[:, :, -1:], full_out)


def test_padding_mask_zeroes_masked_keys() -> None:
    q, k, v = _qkv(2, 2, 4, 4, 8)
    key_mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    mask = key_mask[:, None, None, :]
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    assert torch.all(weights[1, :, :, 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 4))
    # The masked row equals attention over its real keys alone.
    alone, _ = scaled_dot_product_attention(q[1:], k[1:, :, :2], v[1:, :, :2])
    torch.testing.assert_close(out[1:], alone)


def _mha_pair(d: int, nh: int, seed: int = 0) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(seed)
    ours = MultiHeadAttention(d, nh)
    theirs = nn.MultiheadAttention(d, nh, batch_first=True)
    with torch.no_grad():
        ours.qkv.weight.normal_(std=0.3)
        ours.qkv.bias.normal_(std=0.3)
        ours.proj.bias.normal_(std=0.3)
        theirs.in_proj_weight.copy_(ours.qkv.weight)  # (3C, C): rows for Q, then K, then V
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.proj.weight)
        theirs.out_proj.bias.copy_(ours.proj.bias)
    return ours.eval(), theirs.eval()


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_multihead_matches_nn_multiheadattention(causal: bool, need_weights: bool) -> None:
    ours, theirs = _mha_pair(32, 4)
    B, T = 2, 6
    x = torch.randn(B, T, 32)
    positions = torch.arange(T).expand(B, T)
    y, weights = ours(x, positions, None, causal, None, 0, need_weights)
    blocked = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None  # True = may NOT attend
    ref, ref_weights = theirs(x, x, x, attn_mask=blocked, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    if need_weights:
        assert weights is not None and weights.shape == (B, 4, T, T)
        torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-5)
    else:
        assert weights is None


def test_multihead_padding_mask_matches_key_padding_mask() -> None:
    ours, theirs = _mha_pair(16, 2, seed=1)
    x = torch.randn(2, 5, 16)
    key_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    for need_weights in (False, True):
        y, _ = ours(x, torch.arange(5).expand(2, 5), key_mask[:, None, None, :], False, None, 0, need_weights)
        ref, _ = theirs(x, x, x, key_padding_mask=~key_mask)
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_transformer_attention_weights(causal: bool) -> None:
    model = make_model(TINY.replace(causal=causal))
    idx = torch.randint(TINY.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(idx, need_weights=True)
        fused = model(idx)
    assert out.attentions is not None and len(out.attentions) == TINY.n_layers
    assert fused.attentions is None
    for weights in out.attentions:
        assert weights.shape == (2, TINY.n_heads, 9, 9)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, TINY.n_heads, 9))  # rows sum to 1
        assert torch.all(weights >= 0)
        upper = weights.triu(diagonal=1)
        if causal:
            assert torch.all(upper == 0)  # a decoder never looks ahead
        else:
            assert upper.abs().sum() > 0.1  # an encoder does
    # The explicit path (which returns weights) computes the same hidden states as the fused one.
    torch.testing.assert_close(out.hidden, fused.hidden, atol=1e-5, rtol=1e-5)


def test_encoder_attention_ignores_padding() -> None:
    cfg = ModelConfig(vocab_size=50, max_seq_len=32, d_model=32, n_layers=2, n_heads=4, d_ff=64, causal=False,
                      pos_encoding="learned", norm_position="post")
    model = make_model(cfg)
    short = [3, 14, 15, 9]
    idx = torch.tensor([[*short, 0, 0, 0], [2, 7, 1, 8, 2, 8, 1]])
    key_mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    with torch.no_grad():
        out = model(idx, key_mask=key_mask, need_weights=True)
        alone = model(torch.tensor([short]), need_weights=True)
        fused = model(idx, key_mask=key_mask)
    assert out.attentions is not None and alone.attentions is not None
    torch.testing.assert_close(out.hidden[0, :4], alone.hidden[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.hidden[:, :4], out.hidden[:, :4], atol=1e-5, rtol=1e-5)
    for padded, single in zip(out.attentions, alone.attentions, strict=True):
        assert torch.all(padded[0, :, :, 4:] == 0)
        torch.testing.assert_close(padded[0, :, :4, :4], single[0], atol=1e-6, rtol=1e-5)


def test_decoder_padding_mask_combines_with_the_causal_mask() -> None:
    model = make_model()
    short, long = [3, 14, 15], [2, 7, 1, 8, 2, 8]
    idx = torch.tensor([[*short, 0, 0, 0], long])
    key_mask = torch.tensor([[True] * 3 + [False] * 3, [True] * 6])
    with torch.no_grad():
        out = model(idx, key_mask=key_mask, need_weights=True)
        fused = model(idx, key_mask=key_mask)
        alone = model(torch.tensor([short])).hidden
    assert out.attentions is not None
    torch.testing.assert_close(out.hidden[0, :3], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.hidden[:, :3], out.hidden[:, :3], atol=1e-5, rtol=1e-5)
    for weights in out.attentions:
        assert torch.all(weights.triu(diagonal=1) == 0) and torch.all(weights[0, :, :, 3:] == 0)
