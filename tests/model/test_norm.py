"""LayerNorm against torch's nn.LayerNorm and against its formula written out."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model.norm import LayerNorm


def _ours_and_theirs(d: int, eps: float, bias: bool) -> tuple[LayerNorm, nn.LayerNorm]:
    gen = torch.Generator().manual_seed(d)
    ours = LayerNorm(d, eps, bias)
    theirs = nn.LayerNorm(d, eps=eps, bias=bias)
    with torch.no_grad():
        ours.weight.copy_(1 + 0.5 * torch.randn(d, generator=gen))
        theirs.weight.copy_(ours.weight)
        if bias:
            assert ours.bias is not None
            ours.bias.copy_(torch.randn(d, generator=gen))
            theirs.bias.copy_(ours.bias)
    return ours, theirs


@pytest.mark.parametrize(("eps", "bias"), [(1e-5, True), (1e-12, True), (0.1, True), (1e-5, False)])
def test_matches_nn_layernorm(eps: float, bias: bool) -> None:
    ours, theirs = _ours_and_theirs(24, eps, bias)
    x = torch.randn(3, 5, 24, generator=torch.Generator().manual_seed(1)) * 4 + 2
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=1e-6)
    assert (ours.bias is None) == (not bias)


def test_matches_the_formula() -> None:
    ours, _ = _ours_and_theirs(16, 0.01, True)  # a large eps, so dropping it would show
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64).float() * 3
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # the biased variance, as in the paper
    assert ours.bias is not None
    expected = (x - mean) / torch.sqrt(var + 0.01) * ours.weight + ours.bias
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_normalises_the_last_dimension_only() -> None:
    norm = LayerNorm(8)
    x = torch.randn(2, 3, 8) * 10 + 5
    y = norm(x)  # default gain 1, shift 0: zero mean, unit variance per vector
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(2, 3), atol=1e-3, rtol=0)


def test_gradients_match_nn_layernorm() -> None:
    ours, theirs = _ours_and_theirs(12, 1e-5, True)
    x = torch.randn(6, 12, generator=torch.Generator().manual_seed(3))
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours(x1).pow(2).sum().backward()
    theirs(x2).pow(2).sum().backward()
    assert x1.grad is not None and x2.grad is not None and ours.weight.grad is not None
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, atol=1e-5, rtol=1e-5)
