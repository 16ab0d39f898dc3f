"""The position-wise feed-forward network against torch modules with copied weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from model.feedforward import FeedForward

TORCH_ACTIVATIONS = {"relu": nn.ReLU(), "gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh")}


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_linear_activation_linear(activation: str, bias: bool) -> None:
    torch.manual_seed(0)
    ff = FeedForward(16, 40, activation, bias=bias)  # type: ignore[arg-type]
    if bias:  # non-zero biases, so a dropped bias would show
        with torch.no_grad():
            ff.fc_in.bias.normal_()
            ff.fc_out.bias.normal_()
    first, second = nn.Linear(16, 40, bias=bias), nn.Linear(40, 16, bias=bias)
    first.load_state_dict(ff.fc_in.state_dict())
    second.load_state_dict(ff.fc_out.state_dict())
    reference = nn.Sequential(first, TORCH_ACTIVATIONS[activation], second)
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(ff(x), reference(x), atol=1e-6, rtol=1e-6)


def test_activations_follow_their_definitions() -> None:
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    ff = {a: FeedForward(1, 1, a).act for a in ("relu", "gelu", "gelu_tanh")}  # type: ignore[arg-type]
    torch.testing.assert_close(ff["relu"](x), x.clamp(min=0))
    torch.testing.assert_close(ff["gelu"](x), 0.5 * x * (1 + torch.erf(x / math.sqrt(2))))
    tanh_form = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(ff["gelu_tanh"](x), tanh_form)
    assert not torch.allclose(ff["gelu"](x), tanh_form, atol=1e-6, rtol=0)  # two different GELUs


def test_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    ff = FeedForward(8, 32, "relu", dropout=0.5)
    x = torch.randn(4, 8)
    ff.eval()
    torch.testing.assert_close(ff(x), ff(x), atol=0, rtol=0)
    ff.train()
    assert not torch.equal(ff(x), ff(x))
