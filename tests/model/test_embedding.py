"""Token embeddings and positional encodings against their definitions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from model import ModelConfig, Transformer
from model.embedding import LearnedPositions, SinusoidalPositions, TokenEmbedding, sinusoidal_table

from .helpers import make_model, position_table


@pytest.mark.parametrize(("max_len", "d_model"), [(50, 16), (128, 64), (7, 2)])
def test_sinusoidal_table_matches_the_formula(max_len: int, d_model: int) -> None:
    table = sinusoidal_table(max_len, d_model)
    assert table.shape == (max_len, d_model) and table.dtype == torch.float32
    expected = torch.empty(max_len, d_model, dtype=torch.float64)
    for pos in range(max_len):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            expected[pos, 2 * i] = math.sin(angle)  # PE(pos, 2i)
            expected[pos, 2 * i + 1] = math.cos(angle)  # PE(pos, 2i+1)
    torch.testing.assert_close(table.double(), expected, atol=1e-6, rtol=0)


def test_sinusoidal_table_known_values() -> None:
    table = sinusoidal_table(4, 4)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))  # sin 0, cos 0
    # pos 1: dims (0, 1) use frequency 1, dims (2, 3) use 1/10000^(2/4) = 1/100.
    expected = torch.tensor([math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)])
    torch.testing.assert_close(table[1], expected)


def test_sinusoidal_positions_look_up_each_tokens_own_position() -> None:
    module = SinusoidalPositions(32, 8)
    positions = torch.tensor([[0, 1, 2], [5, 17, 31]])
    out = module(positions)
    assert out.shape == (2, 3, 8)
    torch.testing.assert_close(out, sinusoidal_table(32, 8)[positions], atol=0, rtol=0)
    # A function of the config, not a weight: it is not saved in checkpoints.
    assert "table" not in module.state_dict()


def test_learned_positions_are_a_trained_table() -> None:
    module = LearnedPositions(16, 8)
    positions = torch.tensor([[3, 0, 15]])
    torch.testing.assert_close(module(positions), module.weight[positions], atol=0, rtol=0)
    assert "weight" in module.state_dict() and module.weight.requires_grad


def test_token_embedding_matches_nn_embedding() -> None:
    ours = TokenEmbedding(50, 12)
    theirs = nn.Embedding(50, 12)
    theirs.weight.data.copy_(ours.weight.data)
    idx = torch.tensor([[1, 49, 0, 7], [2, 2, 3, 4]])
    torch.testing.assert_close(ours(idx), theirs(idx), atol=0, rtol=0)


@pytest.mark.parametrize("pos_encoding", ["sinusoidal", "learned"])
def test_transformer_input_is_token_plus_position(pos_encoding: str) -> None:
    # No blocks and no final norm: the hidden state is exactly the summed embeddings.
    cfg = ModelConfig(vocab_size=30, max_seq_len=20, d_model=8, n_layers=0, n_heads=2, d_ff=16,
                      pos_encoding=pos_encoding, final_norm=False)  # type: ignore[arg-type]
    model = make_model(cfg)
    idx = torch.tensor([[4, 9, 9, 1], [0, 29, 3, 3]])
    table = position_table(model)
    if pos_encoding == "sinusoidal":
        torch.testing.assert_close(table, sinusoidal_table(20, 8), atol=0, rtol=0)
    with torch.no_grad():
        hidden = model(idx).hidden
        torch.testing.assert_close(hidden, model.tok_emb.weight[idx] + table[torch.arange(4)])
        # Explicit per-sequence positions are used as given (batched decoding relies on it).
        positions = torch.tensor([[10, 11, 12, 13], [0, 1, 2, 3]])
        shifted = model(idx, positions).hidden
        torch.testing.assert_close(shifted, model.tok_emb.weight[idx] + table[positions])
    assert not torch.allclose(shifted[0], hidden[0])  # positions change the input


def test_scaled_token_embeddings() -> None:
    # The paper multiplies token embeddings by sqrt(d_model) before adding the sinusoids.
    cfg = ModelConfig(vocab_size=30, max_seq_len=20, d_model=16, n_layers=0, n_heads=2, d_ff=16,
                      final_norm=False, scale_embeddings=True)
    model = make_model(cfg)
    idx = torch.tensor([[4, 9, 1]])
    with torch.no_grad():
        expected = model.tok_emb.weight[idx] * 4.0 + sinusoidal_table(20, 16)[:3]
        torch.testing.assert_close(model(idx).hidden, expected)
        assert model.lm_head is not None  # the tied head uses the unscaled matrix
        torch.testing.assert_close(model.logits(model(idx).hidden), expected @ model.tok_emb.weight.T)


def test_positional_encodings_make_order_matter() -> None:
    # Without positions attention is permutation-equivariant; with them, swapping tokens
    # changes the output at every position.
    for pos_encoding in ("sinusoidal", "learned"):
        cfg = ModelConfig(vocab_size=30, max_seq_len=16, d_model=16, n_layers=1, n_heads=2, d_ff=32,
                          causal=False, pos_encoding=pos_encoding)  # type: ignore[arg-type]
        model = make_model(cfg)
        with torch.no_grad():
            a = model(torch.tensor([[1, 2, 3]])).hidden
            b = model(torch.tensor([[2, 1, 3]])).hidden
        assert not torch.allclose(a[0, 2], b[0, 2], atol=1e-4)


def test_segment_embedding_adds_type_zero() -> None:
    cfg = ModelConfig(vocab_size=30, max_seq_len=16, d_model=8, n_layers=0, n_heads=2, d_ff=16, causal=False,
                      pos_encoding="learned", final_norm=False, type_vocab_size=2)
    model = make_model(cfg)
    assert isinstance(model, Transformer) and model.type_emb is not None
    idx = torch.tensor([[5, 6]])
    with torch.no_grad():
        expected = model.tok_emb.weight[idx] + position_table(model)[:2] + model.type_emb.weight[0]
        torch.testing.assert_close(model(idx).hidden, expected)
