"""The position-wise feed-forward network: Linear -> activation -> Linear."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch.nn import functional as F

from .config import Activation

ACTIVATIONS: dict[Activation, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,  # the exact erf form (BERT)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
}


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, activation: Activation, bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.fc_in: nn.Module = nn.Linear(d_model, d_ff, bias=bias)  # model.cpu may fuse the activation into it
        self.fc_out = nn.Linear(d_ff, d_model, bias=bias)
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, C)
        y: Tensor = self.dropout(self.fc_out(self.act(self.fc_in(x))))
        return y
