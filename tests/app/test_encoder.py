"""Serving a Hugging Face BERT / sentence-transformers folder: /embed, /attention, and no /generate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app

from .conftest import build_sentence_bert, hf_mean_pooled, make_settings

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sentence_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def bert_client(bert_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(bert_dir))) as c:
        yield c


def test_embed_matches_transformers_mean_pooling(bert_client: TestClient, bert_dir: Path) -> None:
    texts = ["Beautiful is better than ugly.", "Flat is better"]
    got = torch.tensor(bert_client.post("/embed", json={"inputs": texts}).json())
    expected = torch.nn.functional.normalize(hf_mean_pooled(bert_dir, texts), dim=-1)
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
