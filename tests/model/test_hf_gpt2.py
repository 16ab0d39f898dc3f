"""Parity with Hugging Face transformers' GPT-2: logits, attention weights and greedy generation.

A random-initialised GPT2LMHeadModel is saved with save_pretrained, next to a byte-level BPE
tokenizer, and loaded by model.load_checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import CheckpointError, Tokenizer, generate, load_checkpoint

from .helpers import randomize_

transformers = pytest.importorskip("transformers")

# vocab 512 = the BPE fixture's size; weights N(0, 0.2) so greedy continuations vary.
HF_CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2 (gelu_new)": {},
    "gelu, n_inner": {"activation_function": "gelu", "n_inner": 96, "layer_norm_epsilon": 1e-6},
}
PROMPT = "First Citizen:\nBefore we proceed any further, hear me"


def _build(path: Path, bpe_dir: Path, **overrides: Any) -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=512, n_positions=128,
                                     bos_token_id=0, eos_token_id=0, **overrides)
    hf_model = randomize_(transformers.GPT2LMHeadModel(config), seed=0, std=0.2).eval()
    hf_model.save_pretrained(path)
    shutil.copy(bpe_dir / "tokenizer.json", path / "tokenizer.json")
    return hf_model


@pytest.fixture(scope="module", params=list(HF_CONFIGS))
def gpt2(request: pytest.FixtureRequest, bpe_dir: Path,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    path = tmp_path_factory.mktemp("gpt2")
    return path, _build(path, bpe_dir, **HF_CONFIGS[request.param])


def _prompt_ids(path: Path) -> torch.Tensor:
    return torch.tensor([Tokenizer.from_dir(path).encode(PROMPT).ids])


def test_config_is_converted(gpt2: tuple[Path, Any]) -> None:
    path, hf_model = gpt2
    loaded = load_checkpoint(path)
    cfg, hf = loaded.model.cfg, hf_model.config
    assert loaded.model_type == "gpt2"
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.max_seq_len) == (64, 2, 4, 128)
    assert cfg.d_ff == (hf.n_inner or 4 * 64) and cfg.norm_eps == hf.layer_norm_epsilon
    assert cfg.causal and cfg.pos_encoding == "learned" and cfg.norm_position == "pre" and cfg.tie_embeddings
    assert cfg.activation == {"gelu_new": "gelu_tanh", "gelu": "gelu"}[hf.activation_function]
    assert loaded.tokenizer.eos_token_id == 0


def test_logits_match(gpt2: tuple[Path, Any]) -> None:
    path, hf_model = gpt2
    model = load_checkpoint(path).model
    ids = _prompt_ids(path)
    assert ids.shape[1] > 8
    with torch.no_grad():
        expected = hf_model(ids).logits
        got = model.logits(model(ids).hidden)
    assert expected.abs().max() > 1.0  # not a degenerate model
    assert (got - expected).abs().max() < 1e-4


def test_attention_weights_match(gpt2: tuple[Path, Any]) -> None:
    path, _ = gpt2
    eager = transformers.GPT2LMHeadModel.from_pretrained(path, attn_implementation="eager").eval()
    model = load_checkpoint(path).model
    ids = _prompt_ids(path)
    with torch.no_grad():
        expected = eager(ids, output_attentions=True).attentions
        got = model(ids, need_weights=True).attentions
    assert got is not None and len(got) == len(expected) == 2
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.shape == theirs.shape == (1, 4, ids.shape[1], ids.shape[1])
        assert (ours - theirs).abs().max() < 1e-5


def test_greedy_generation_matches_transformers(gpt2: tuple[Path, Any]) -> None:
    path, hf_model = gpt2
    loaded = load_checkpoint(path)
    ids = _prompt_ids(path)
    with torch.no_grad():
        theirs = hf_model.generate(ids, max_new_tokens=32, do_sample=False, pad_token_id=0)[0, ids.shape[1]:]
    ours = generate(loaded.model, ids[0].tolist(), 32, eos_token_id=loaded.tokenizer.eos_token_id)
    assert len(ours) == 32 and len(set(ours)) > 4  # no EOS, and not one repeated token
    assert ours == theirs.tolist()


def test_tokenizer_matches_transformers(gpt2: tuple[Path, Any]) -> None:
    path, _ = gpt2
    ours = Tokenizer.from_dir(path)
    theirs = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    for text in (PROMPT, "  two spaces\nand 😀 emoji"):
        assert ours.encode(text).ids == theirs(text)["input_ids"]
        assert ours.decode(ours.encode(text).ids) == theirs.decode(theirs(text)["input_ids"]) == text


def test_vocab_and_merges_folder(gpt2: tuple[Path, Any], bpe_dir: Path, tmp_path: Path) -> None:
    """A GPT-2 folder with vocab.json + merges.txt instead of tokenizer.json."""
    path, hf_model = gpt2
    for name in ("config.json", "model.safetensors"):
        shutil.copy(path / name, tmp_path / name)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(bpe_dir / name, tmp_path / name)
    loaded = load_checkpoint(tmp_path)
    theirs = transformers.GPT2TokenizerFast.from_pretrained(tmp_path)  # reads the same two files
    ids = loaded.tokenizer.encode(PROMPT).ids
    assert ids == theirs(PROMPT)["input_ids"] == _prompt_ids(path)[0].tolist()
    with_eos = f"{PROMPT}<|endoftext|>Second"
    assert loaded.tokenizer.encode(with_eos).ids == theirs(with_eos)["input_ids"]
    assert loaded.tokenizer.is_special(0) and theirs.all_special_ids == [0]
    with torch.no_grad():
        got = loaded.model.logits(loaded.model(torch.tensor([ids])).hidden)
        assert (got - hf_model(torch.tensor([ids])).logits).abs().max() < 1e-4


def test_original_gpt2_bin_layout(gpt2: tuple[Path, Any], tmp_path: Path) -> None:
    """OpenAI's GPT-2 .bin: no 'transformer.' prefix, plus the causal-mask buffers."""
    path, hf_model = gpt2
    state = {k.removeprefix("transformer."): v for k, v in load_file(str(path / "model.safetensors")).items()}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.ones(1, 1, 128, 128).tril()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, tmp_path / "pytorch_model.bin")
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(path / name, tmp_path / name)
    model = load_checkpoint(tmp_path).model
    ids = _prompt_ids(path)
    with torch.no_grad():
        assert (model.logits(model(ids).hidden) - hf_model(ids).logits).abs().max() < 1e-4


def _copy(path: Path, dest: Path) -> Path:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(path / name, dest / name)
    return dest


def test_missing_gpt2_weight_is_named(gpt2: tuple[Path, Any], tmp_path: Path) -> None:
    folder = _copy(gpt2[0], tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    del state["transformer.h.1.mlp.c_fc.bias"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"h\.1\.mlp\.c_fc\.bias.* missing for a gpt2 model"):
        load_checkpoint(folder)


def test_gpt2_shape_mismatch(gpt2: tuple[Path, Any], tmp_path: Path) -> None:
    folder = _copy(gpt2[0], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_positions": 256}))
    with pytest.raises(CheckpointError, match=r"pos_emb\.weight has shape \(128, 64\).*\(256, 64\)"):
        load_checkpoint(folder)


def test_unsupported_activation(gpt2: tuple[Path, Any], tmp_path: Path) -> None:
    folder = _copy(gpt2[0], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "activation_function": "swish"}))
    with pytest.raises(CheckpointError, match="unsupported activation 'swish'"):
        load_checkpoint(folder)
