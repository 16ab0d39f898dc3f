"""Parity with Hugging Face BERT encoders and sentence-transformers folders.

A random-initialised BertModel is saved with save_pretrained, next to a WordPiece tokenizer
trained on the corpus, and loaded by model.load_checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import BertWordPieceTokenizer
from torch import Tensor
from torch.nn import functional as F

from model import CheckpointError, LoadedModel, Tokenizer, load_checkpoint, pool

from .helpers import randomize_

transformers = pytest.importorskip("transformers")

TEXTS = ["First Citizen: we are accounted poor citizens.", "Speak, speak.", "Resolved. resolved."]


@pytest.fixture(scope="module")
def wordpiece_dir(corpus_text: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vocab.txt and the equivalent tokenizer.json of a WordPiece tokenizer trained on the corpus."""
    path = tmp_path_factory.mktemp("wordpiece")
    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator([corpus_text], vocab_size=400, show_progress=False)
    trainer.save_model(str(path))
    # Loaded from its vocab.txt, the tokenizer has BERT's [CLS] ... [SEP] post-processor.
    BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=True).save(str(path / "tokenizer.json"))
    return path


@pytest.fixture(scope="module")
def bert(wordpiece_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    path = tmp_path_factory.mktemp("bert")
    vocab_size = len((wordpiece_dir / "vocab.txt").read_text(encoding="utf-8").splitlines())
    config = transformers.BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=128,
                                     max_position_embeddings=128, pad_token_id=0)
    torch.manual_seed(0)
    hf_model = randomize_(transformers.BertModel(config), seed=1, std=0.1).eval()
    hf_model.save_pretrained(path)
    for name in ("tokenizer.json", "vocab.txt"):
        shutil.copy(wordpiece_dir / name, path / name)
    return path, hf_model


def _batch(tokenizer: Tokenizer, texts: list[str]) -> tuple[Tensor, Tensor]:
    """Right-padded ids and the (B, T) mask of real tokens."""
    encodings = tokenizer.encode_batch(texts)
    T = max(len(e.ids) for e in encodings)
    ids = torch.zeros(len(texts), T, dtype=torch.long)
    mask = torch.zeros(len(texts), T, dtype=torch.long)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        mask[row, : len(e.ids)] = 1
    return ids, mask


def _embed(loaded: LoadedModel, texts: list[str]) -> Tensor:
    ids, mask = _batch(loaded.tokenizer, texts)
    with torch.no_grad():
        hidden = loaded.model(ids, key_mask=mask.bool()).hidden
    return pool(hidden, mask, loaded.model.cfg.pooling, loaded.model.cfg.normalize_embeddings)


def test_config_is_converted(bert: tuple[Path, Any]) -> None:
    loaded = load_checkpoint(bert[0])
    cfg = loaded.model.cfg
    assert loaded.model_type == "bert"
    assert not cfg.causal and cfg.norm_position == "post" and cfg.embed_norm and not cfg.final_norm
    assert cfg.activation == "gelu" and cfg.norm_eps == 1e-12 and cfg.type_vocab_size == 2
    assert loaded.model.lm_head is None
    assert (cfg.pooling, cfg.normalize_embeddings) == ("mean", False)  # plain BERT: no modules.json


def test_hidden_states_match(bert: tuple[Path, Any]) -> None:
    path, hf_model = bert
    loaded = load_checkpoint(path)
    ids, mask = _batch(loaded.tokenizer, TEXTS)
    assert mask[1].sum() < mask[0].sum()  # a padded batch
    with torch.no_grad():
        expected = hf_model(ids, attention_mask=mask).last_hidden_state
        got = loaded.model(ids, key_mask=mask.bool()).hidden
    real = mask.bool()
    assert (got[real] - expected[real]).abs().max() < 1e-4
    assert expected.abs().max() > 1.0


def test_attention_weights_match(bert: tuple[Path, Any]) -> None:
    path, _ = bert
    eager = transformers.BertModel.from_pretrained(path, attn_implementation="eager").eval()
    loaded = load_checkpoint(path)
    ids, mask = _batch(loaded.tokenizer, TEXTS)
    with torch.no_grad():
        expected = eager(ids, attention_mask=mask, output_attentions=True).attentions
        got = loaded.model(ids, key_mask=mask.bool(), need_weights=True).attentions
    assert got is not None and len(got) == len(expected) == 2
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.shape == theirs.shape
        assert (ours - theirs).abs().max() < 1e-5
        assert torch.all(ours[1, :, :, int(mask[1].sum()):] == 0)  # padding gets no attention


def test_masked_lm_checkpoint_with_prefix(bert: tuple[Path, Any], tmp_path: Path) -> None:
    """BertForMaskedLM-style weights: 'bert.' prefix and extra head weights, which are ignored."""
    path, hf_model = bert
    state = {f"bert.{k}": v for k, v in load_file(str(path / "model.safetensors")).items()}
    state["cls.predictions.bias"] = torch.zeros(10)
    save_file(state, str(tmp_path / "model.safetensors"))
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(path / name, tmp_path / name)
    loaded = load_checkpoint(tmp_path)
    ids, _ = _batch(loaded.tokenizer, TEXTS[:1])
    with torch.no_grad():
        diff = loaded.model(ids).hidden - hf_model(ids).last_hidden_state
    assert diff.abs().max() < 1e-4


@pytest.mark.parametrize("files", [("tokenizer.json",), ("vocab.txt",)])
def test_wordpiece_tokenizer_matches_transformers(bert: tuple[Path, Any], tmp_path: Path,
                                                  files: tuple[str, ...]) -> None:
    for name in files:
        shutil.copy(bert[0] / name, tmp_path / name)
    ours = Tokenizer.from_dir(tmp_path)
    reference = tmp_path / "reference"  # transformers' own BERT tokenizer, built from vocab.txt alone
    reference.mkdir()
    shutil.copy(bert[0] / "vocab.txt", reference / "vocab.txt")
    theirs = transformers.BertTokenizerFast.from_pretrained(reference, do_lower_case=True)
    cls, sep = theirs.cls_token_id, theirs.sep_token_id
    for text in [*TEXTS, "UPPER case, naïve café!"]:
        ids = ours.encode(text).ids
        assert ids == theirs(text)["input_ids"]
        assert ids[0] == cls and ids[-1] == sep and len(ids) > 3
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("files", [("tokenizer.json",), ("vocab.txt",)])
def test_bert_special_tokens(bert: tuple[Path, Any], tmp_path: Path, files: tuple[str, ...]) -> None:
    for name in files:
        shutil.copy(bert[0] / name, tmp_path / name)
    tok = Tokenizer.from_dir(tmp_path)
    cls, sep, mask = (tok.backend.token_to_id(t) for t in ("[CLS]", "[SEP]", "[MASK]"))
    assert cls is not None and sep is not None and mask is not None
    assert tok.is_special(cls) and tok.is_special(sep) and tok.is_special(mask)
    assert not tok.is_special(tok.encode("speak", add_special_tokens=False).ids[0])
    ids = tok.encode("speak [MASK] speak").ids
    assert ids.count(mask) == 1  # matched whole, not split into "[", "mask", "]"
    assert tok.decode(ids, skip_special_tokens=True) == "speak speak"


def test_vocab_txt_honours_do_lower_case(bert: tuple[Path, Any], tmp_path: Path) -> None:
    shutil.copy(bert[0] / "vocab.txt", tmp_path / "vocab.txt")
    lower = Tokenizer.from_dir(tmp_path).encode("Speak").ids
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    cased = Tokenizer.from_dir(tmp_path).encode("Speak").ids
    assert lower != cased  # "Speak" is not in the lowercase vocabulary as a whole word


POOLING_MODES = {
    "mean": {"pooling_mode_mean_tokens": True},
    "cls": {"pooling_mode_cls_token": True},
    "max": {"pooling_mode_max_tokens": True},
}


def _sentence_transformers_folder(bert: Path, dest: Path, mode: str, normalize: bool) -> Path:
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt"):
        shutil.copy(bert / name, dest / name)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (dest / "2_Normalize").mkdir()
    (dest / "modules.json").write_text(json.dumps(modules))
    (dest / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": 64, "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False, **POOLING_MODES[mode]}
    (dest / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    sbert = {"max_seq_length": 128, "do_lower_case": False}
    (dest / "sentence_bert_config.json").write_text(json.dumps(sbert))
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 128,
        "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
        "mask_token": "[MASK]"}))
    return dest


def _manual_pooling(hidden: Tensor, mask: Tensor, mode: str, normalize: bool) -> Tensor:
    """sentence-transformers' pooling, written out per sequence over its real tokens."""
    rows = []
    for row in range(hidden.shape[0]):
        real = hidden[row, : int(mask[row].sum())]
        rows.append({"mean": real.mean(0), "cls": real[0], "max": real.max(0).values}[mode])
    out = torch.stack(rows)
    return out / out.norm(dim=-1, keepdim=True) if normalize else out


@pytest.mark.parametrize(("mode", "normalize"),
                         [("mean", True), ("cls", False), ("max", True), ("mean", False)])
def test_sentence_transformers_pooling(bert: tuple[Path, Any], tmp_path: Path, mode: str,
                                       normalize: bool) -> None:
    path, hf_model = bert
    folder = _sentence_transformers_folder(path, tmp_path, mode, normalize)
    loaded = load_checkpoint(folder)
    assert (loaded.model.cfg.pooling, loaded.model.cfg.normalize_embeddings) == (mode, normalize)
    got = _embed(loaded, TEXTS)
    ids, mask = _batch(loaded.tokenizer, TEXTS)
    with torch.no_grad():
        hidden = hf_model(ids, attention_mask=mask).last_hidden_state
    expected = _manual_pooling(hidden, mask, mode, normalize)
    assert got.shape == (3, 64)
    assert (got - expected).abs().max() < 1e-4
    if normalize:
        torch.testing.assert_close(got.norm(dim=-1), torch.ones(3))
    else:
        assert got.norm(dim=-1).min() > 1.5  # really not normalised
    # The embeddings tell the texts apart (cosine similarity clearly below 1).
    assert F.cosine_similarity(got[0], got[1], dim=0) < 0.99


@pytest.mark.parametrize(("mode", "normalize"), [("mean", True), ("cls", False)])
def test_matches_sentence_transformers(bert: tuple[Path, Any], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, mode: str, normalize: bool) -> None:
    st = pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = _sentence_transformers_folder(bert[0], tmp_path, mode, normalize)
    reference = st.SentenceTransformer(str(folder), device="cpu")
    expected = reference.encode(TEXTS, convert_to_tensor=True)
    got = _embed(load_checkpoint(folder), TEXTS)
    assert (got - expected.cpu()).abs().max() < 1e-4


def test_pooling_config_errors(bert: tuple[Path, Any], tmp_path: Path) -> None:
    folder = _sentence_transformers_folder(bert[0], tmp_path, "mean", True)
    config = folder / "1_Pooling" / "config.json"
    config.write_text(json.dumps({"word_embedding_dimension": 64, "pooling_mode_weightedmean_tokens": True}))
    with pytest.raises(CheckpointError, match="no supported pooling mode"):
        load_checkpoint(folder)
    config.unlink()
    with pytest.raises(CheckpointError, match=r"missing file .*1_Pooling/config\.json"):
        load_checkpoint(folder)


def test_relative_positions_are_refused(bert: tuple[Path, Any], tmp_path: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(bert[0] / name, tmp_path / name)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "position_embedding_type": "relative_key"}))
    with pytest.raises(CheckpointError, match="position_embedding_type 'relative_key'"):
        load_checkpoint(tmp_path)


def test_missing_bert_weight_is_named(bert: tuple[Path, Any], tmp_path: Path) -> None:
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(bert[0] / name, tmp_path / name)
    state = load_file(str(bert[0] / "model.safetensors"))
    del state["encoder.layer.1.attention.self.key.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.1\.attention\.self\.key\.weight"):
        load_checkpoint(tmp_path)
