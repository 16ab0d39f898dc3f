"""Serving a Hugging Face BERT / sentence-transformers folder: /embed, /attention, and no /generate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from tokenizers import BertWordPieceTokenizer

from app.main import create_app

from .conftest import ZEN, make_settings

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bert")
    (folder / "corpus.txt").write_text(ZEN * 3)
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train([str(folder / "corpus.txt")], vocab_size=300)
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=128, max_position_embeddings=128)
    transformers.BertModel(cfg, add_pooling_layer=False).save_pretrained(folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 64, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}))
    return folder


@pytest.fixture(scope="module")
def bert_client(bert_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(bert_dir))) as c:
        yield c


def test_embed_matches_transformers_mean_pooling(bert_client: TestClient, bert_dir: Path) -> None:
    texts = ["Beautiful is better than ugly.", "Flat is better"]
    got = torch.tensor(bert_client.post("/embed", json={"inputs": texts}).json())
    hf = transformers.BertModel.from_pretrained(bert_dir).eval()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(bert_dir / "tokenizer.json"), pad_token="[PAD]")
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert torch.allclose(got, expected, atol=1e-4)


def test_attention_is_bidirectional(bert_client: TestClient) -> None:
    body = bert_client.post("/attention", json={"inputs": "Simple is better"}).json()
    assert body["causal"] is False
    first_row = body["attentions"][0][0][0]
    assert sum(first_row) == pytest.approx(1.0, abs=1e-5) and first_row[-1] > 0  # sees later tokens


def test_generate_is_refused_for_an_encoder(bert_client: TestClient) -> None:
    r = bert_client.post("/generate", json={"inputs": "Simple", "parameters": {"max_new_tokens": 3}})
    assert r.status_code == 422 and "encoder" in r.json()["error"]
    info = bert_client.get("/info").json()
    assert info["model_type"] == "bert" and info["can_generate"] is False
