"""Checkpoint folders: exact save -> load, .bin files, and clear errors for broken folders."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import CheckpointError, ModelConfig, Tokenizer, Transformer, load_checkpoint, save_checkpoint

from .helpers import TINY, make_model, random_ids

CONFIGS = {
    "decoder tied sinusoidal": TINY.replace(vocab_size=512),
    "decoder untied learned post-LN": TINY.replace(
        vocab_size=512, tie_embeddings=False, pos_encoding="learned", norm_position="post", final_norm=False,
        activation="gelu_tanh"),
    "encoder without head": TINY.replace(vocab_size=512, causal=False, lm_head=False, embed_norm=True,
                                         type_vocab_size=2, pooling="cls", normalize_embeddings=True),
}


@pytest.fixture
def saved(tmp_path: Path, bpe_dir: Path) -> Path:
    """A saved tiny decoder with the BPE tokenizer."""
    save_checkpoint(make_model(CONFIGS["decoder tied sinusoidal"]), Tokenizer.from_dir(bpe_dir), tmp_path)
    return tmp_path


def _output(model: Transformer, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        hidden = model(idx).hidden
        return model.logits(hidden) if model.lm_head is not None else hidden


@pytest.mark.parametrize("name", list(CONFIGS))
def test_save_then_load_is_exact(name: str, tmp_path: Path, bpe_dir: Path) -> None:
    model = make_model(CONFIGS[name])
    tokenizer = Tokenizer.from_dir(bpe_dir)
    save_checkpoint(model, tokenizer, tmp_path, extra={"step": 7})
    loaded = load_checkpoint(tmp_path)
    assert loaded.model_type == "attnserve" and loaded.path == tmp_path
    assert loaded.model.cfg == model.cfg
    assert not loaded.model.training
    idx = torch.tensor([random_ids(12, 512, 0), random_ids(12, 512, 1)])
    assert torch.equal(_output(loaded.model, idx), _output(model, idx))  # bitwise
    assert loaded.tokenizer.encode("Speak, speak.").ids == tokenizer.encode("Speak, speak.").ids
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "attnserve" and config["step"] == 7
    stored = load_file(str(tmp_path / "model.safetensors"))
    assert ("lm_head.weight" in stored) == (model.lm_head is not None and not model.cfg.tie_embeddings)
    assert "pos_emb.table" not in stored  # the sinusoidal table is rebuilt, not stored


def test_tied_head_stays_tied_after_loading(saved: Path) -> None:
    model = load_checkpoint(saved).model
    assert model.lm_head is not None and model.lm_head.weight is model.tok_emb.weight


def test_save_in_half_precision(tmp_path: Path, bpe_dir: Path) -> None:
    model = make_model(CONFIGS["decoder tied sinusoidal"])
    save_checkpoint(model, Tokenizer.from_dir(bpe_dir), tmp_path, dtype=torch.bfloat16)
    assert all(t.dtype == torch.bfloat16 for t in load_file(str(tmp_path / "model.safetensors")).values())
    loaded = load_checkpoint(tmp_path)  # loads as float32 unless asked
    assert next(loaded.model.parameters()).dtype == torch.float32
    idx = torch.tensor([random_ids(10, 512, 2)])
    torch.testing.assert_close(_output(loaded.model, idx), _output(model, idx), atol=0.1, rtol=0.05)
    assert next(load_checkpoint(tmp_path, dtype=torch.bfloat16).model.parameters()).dtype == torch.bfloat16


def test_pytorch_bin_weights_load(saved: Path) -> None:
    expected = load_checkpoint(saved).model
    state = load_file(str(saved / "model.safetensors"))
    (saved / "model.safetensors").unlink()
    torch.save(state, saved / "pytorch_model.bin")
    loaded = load_checkpoint(saved).model
    idx = torch.tensor([random_ids(9, 512, 3)])
    assert torch.equal(_output(loaded, idx), _output(expected, idx))


class _Payload:
    """Unpickling this runs code: the reason a .bin must never be unpickled in full."""

    ran = False

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_Payload._run, ())

    @staticmethod
    def _run() -> None:
        _Payload.ran = True


def test_a_bin_with_code_is_not_unpickled(saved: Path) -> None:
    (saved / "model.safetensors").unlink()
    # torch.save's own format: a full torch.load (weights_only=False) would run the payload.
    torch.save({"tok_emb.weight": _Payload()}, saved / "pytorch_model.bin")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(saved)
    assert not _Payload.ran


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")


def test_missing_config(saved: Path) -> None:
    (saved / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"missing file .*config\.json"):
        load_checkpoint(saved)


def test_unknown_model_type(saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(CheckpointError, match="unknown model_type 'llama'"):
        load_checkpoint(saved)


def test_missing_weights(saved: Path) -> None:
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing weights .*model\.safetensors"):
        load_checkpoint(saved)


def test_missing_tokenizer(saved: Path) -> None:
    (saved / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="no tokenizer in"):
        load_checkpoint(saved)


def test_shape_mismatch_names_the_weight(saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "d_ff": 48}))
    expected = r"blocks\.0\.mlp\.fc_in\.weight has shape \(64, 32\).*\(48, 32\)"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(saved)


def test_missing_weight_is_named(saved: Path) -> None:
    state = load_file(str(saved / "model.safetensors"))
    del state["blocks.1.ln_2.bias"]
    save_file(state, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing weights blocks\.1\.ln_2\.bias"):
        load_checkpoint(saved)


def test_unknown_config_field_is_an_error(saved: Path) -> None:
    # Fields that are not ModelConfig's (training metadata) are ignored, bad values are not.
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "val_loss": 1.5, "d_model": 33}))
    with pytest.raises(ValueError, match="divisible"):
        load_checkpoint(saved)


def test_config_round_trip_through_the_folder(tmp_path: Path, bpe_dir: Path) -> None:
    cfg = ModelConfig(vocab_size=512, max_seq_len=16, d_model=16, n_layers=1, n_heads=2, d_ff=32,
                      eos_token_id=0, bos_token_id=0)
    save_checkpoint(Transformer(cfg), Tokenizer.from_dir(bpe_dir), tmp_path)
    loaded = load_checkpoint(tmp_path)
    assert loaded.model.cfg == cfg
    assert loaded.tokenizer.eos_token_id == 0 and loaded.tokenizer.bos_token_id == 0
