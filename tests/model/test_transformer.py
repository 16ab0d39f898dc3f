"""Blocks and the whole Transformer against torch's own encoder layers with copied weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from model import PRESETS, ModelConfig, Transformer
from model.block import Block

from .helpers import TINY, make_model, position_table, random_ids

TORCH_ACT = {"relu": "relu", "gelu": "gelu"}


def torch_layer(block: Block, cfg: ModelConfig) -> nn.TransformerEncoderLayer:
    """torch's encoder layer with the block's weights copied in."""
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, dropout=0.0,
                                       activation=TORCH_ACT[cfg.activation], layer_norm_eps=cfg.norm_eps,
                                       batch_first=True, norm_first=cfg.norm_position == "pre")
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
        layer.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        layer.self_attn.out_proj.weight.copy_(block.attn.proj.weight)
        layer.self_attn.out_proj.bias.copy_(block.attn.proj.bias)
        layer.linear1.load_state_dict(block.mlp.fc_in.state_dict())
        layer.linear2.load_state_dict(block.mlp.fc_out.state_dict())
        layer.norm1.load_state_dict(block.ln_1.state_dict())
        layer.norm2.load_state_dict(block.ln_2.state_dict())
    return layer.eval()


CONFIGS = {
    "pre-LN decoder, sinusoidal, relu": TINY,
    "post-LN decoder, learned, gelu": TINY.replace(
        norm_position="post", pos_encoding="learned", activation="gelu", final_norm=False),
    "pre-LN decoder, scaled embeddings": TINY.replace(scale_embeddings=True),
    "pre-LN encoder, learned": TINY.replace(causal=False, pos_encoding="learned"),
    "post-LN encoder, sinusoidal, untied": TINY.replace(causal=False, norm_position="post", final_norm=False,
                                                        tie_embeddings=False),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_block_matches_torch_encoder_layer(name: str) -> None:
    cfg = CONFIGS[name]
    model = make_model(cfg)
    block = model.blocks[0]
    assert isinstance(block, Block)
    x = torch.randn(2, 7, cfg.d_model)
    mask = torch.ones(7, 7, dtype=torch.bool).triu(1) if cfg.causal else None  # torch: True = blocked
    with torch.no_grad():
        ours, _ = block(x, torch.arange(7).expand(2, 7), None, cfg.causal, None, 0, False)
        theirs = torch_layer(block, cfg)(x, src_mask=mask, is_causal=cfg.causal)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_transformer_matches_a_reference_built_from_torch_modules(name: str) -> None:
    """Embeddings + torch encoder layers + final LayerNorm + head, written out independently."""
    cfg = CONFIGS[name]
    model = make_model(cfg)
    idx = torch.tensor([random_ids(11, cfg.vocab_size, 1), random_ids(11, cfg.vocab_size, 2)])
    table = position_table(model)
    with torch.no_grad():
        scale = cfg.d_model**0.5 if cfg.scale_embeddings else 1.0
        x = F.embedding(idx, model.tok_emb.weight) * scale + table[:11]
        mask = torch.ones(11, 11, dtype=torch.bool).triu(1) if cfg.causal else None
        for block in model.blocks:
            x = torch_layer(block, cfg)(x, src_mask=mask, is_causal=cfg.causal)  # type: ignore[arg-type]
        if cfg.final_norm:
            assert model.ln_f is not None
            x = F.layer_norm(x, (cfg.d_model,), model.ln_f.weight, model.ln_f.bias, cfg.norm_eps)
        out = model(idx)
        torch.testing.assert_close(out.hidden, x, atol=1e-5, rtol=1e-5)
        logits = model.logits(out.hidden)
    assert model.lm_head is not None
    head = model.tok_emb.weight if cfg.tie_embeddings else model.lm_head.weight
    torch.testing.assert_close(logits, x @ head.T, atol=1e-4, rtol=1e-5)
    assert logits.shape == (2, 11, cfg.vocab_size)


def test_tied_and_untied_heads() -> None:
    tied = Transformer(TINY)
    assert tied.lm_head is not None and tied.lm_head.weight is tied.tok_emb.weight
    untied = Transformer(TINY.replace(tie_embeddings=False))
    assert untied.lm_head is not None and untied.lm_head.weight is not untied.tok_emb.weight
    assert untied.num_parameters() == tied.num_parameters() + TINY.vocab_size * TINY.d_model


def test_encoder_without_head_refuses_logits() -> None:
    model = Transformer(TINY.replace(causal=False, lm_head=False))
    assert model.lm_head is None
    with pytest.raises(ValueError, match="no vocabulary head"):
        model.logits(torch.zeros(1, TINY.d_model))


def test_decoder_is_causal_and_encoder_is_not() -> None:
    ids = random_ids(10, TINY.vocab_size, 3)
    changed = [*ids[:6], (ids[6] + 1) % TINY.vocab_size, *ids[7:]]  # change token 6
    for causal in (True, False):
        model = make_model(TINY.replace(causal=causal))
        with torch.no_grad():
            a, b = model(torch.tensor([ids])).hidden, model(torch.tensor([changed])).hidden
        assert not torch.allclose(a[0, 6:], b[0, 6:])
        if causal:  # positions before the change cannot see it
            torch.testing.assert_close(a[0, :6], b[0, :6], atol=1e-6, rtol=0)
        else:
            assert not torch.allclose(a[0, :6], b[0, :6])


def _overfit(cfg: ModelConfig, steps: int = 40) -> tuple[float, float]:
    torch.manual_seed(0)
    model = Transformer(cfg).train()
    data = torch.tensor([random_ids(17, cfg.vocab_size, 4)])
    x, y = data[:, :-1], data[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model.logits(model(x).hidden).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize("norm_position", ["pre", "post"])
@pytest.mark.parametrize("pos_encoding", ["sinusoidal", "learned"])
def test_pre_and_post_ln_decoders_learn(norm_position: str, pos_encoding: str) -> None:
    pre = norm_position == "pre"
    cfg = TINY.replace(norm_position=norm_position, pos_encoding=pos_encoding, final_norm=pre)
    first, last = _overfit(cfg)
    assert first > 4.0  # about ln(97) = 4.57 at init
    assert last < 0.5 * first, (first, last)  # memorises a 16-token sequence


def test_dropout_is_active_only_in_training() -> None:
    model = make_model(TINY.replace(dropout=0.3))
    idx = torch.tensor([random_ids(8, TINY.vocab_size, 5)])
    with torch.no_grad():
        torch.testing.assert_close(model(idx).hidden, model(idx).hidden, atol=0, rtol=0)
        model.train()
        assert not torch.equal(model(idx).hidden, model(idx).hidden)


def _hidden(model: Transformer, idx: Tensor) -> Tensor:
    with torch.no_grad():
        hidden: Tensor = model(idx).hidden
    return hidden


def test_batch_rows_are_independent() -> None:
    model = make_model(TINY)
    a, b = random_ids(9, TINY.vocab_size, 6), random_ids(9, TINY.vocab_size, 7)
    both = _hidden(model, torch.tensor([a, b]))
    torch.testing.assert_close(both[1], _hidden(model, torch.tensor([b]))[0], atol=1e-6, rtol=1e-5)


class TestConfig:
    def test_presets_are_valid(self) -> None:
        for name, cfg in PRESETS.items():
            assert cfg.d_model % cfg.n_heads == 0, name
        assert PRESETS["tiny"].n_layers <= 2

    def test_head_dim(self) -> None:
        assert TINY.head_dim == TINY.d_model // TINY.n_heads == 8

    def test_rejects_inconsistent_shapes(self) -> None:
        with pytest.raises(ValueError, match="divisible by n_heads"):
            ModelConfig(d_model=30, n_heads=4)
        with pytest.raises(ValueError, match="even d_model"):
            ModelConfig(d_model=33, n_heads=3)
        ModelConfig(d_model=33, n_heads=3, pos_encoding="learned")  # odd is fine without sinusoids

    def test_frozen_and_round_trips(self) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            TINY.d_model = 8  # type: ignore[misc]
        assert ModelConfig.from_dict(TINY.to_dict()) == TINY
        assert TINY.replace(n_layers=3).n_layers == 3 and TINY.n_layers == 2

    def test_from_dict_names_unknown_fields(self) -> None:
        with pytest.raises(ValueError, match="n_embd"):
            ModelConfig.from_dict({**TINY.to_dict(), "n_embd": 8})
