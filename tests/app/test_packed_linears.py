"""Models wide enough (>= 256) for the CPU's oneDNN-packed linear layers, served over HTTP.

The tiny test models elsewhere are too narrow to be packed; these two go through the packed
layers, each feed-forward's activation fused into its first matmul (GELU-tanh for GPT-2, exact
GELU for BERT), packed prefill and packed /embed, against transformers on the same weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from model import Tokenizer
from model.cpu import MIN_PACKED_DIM, PackedLinear
from model.tokenizer import train_bpe

from ..model.helpers import randomize_
from .conftest import CORPUS, build_sentence_bert, hf_mean_pooled, make_settings

transformers = pytest.importorskip("transformers")
WIDE = MIN_PACKED_DIM
PROMPTS = ["Beautiful is better than ugly.", "Flat", "Readability counts. Special cases aren't special enough"]


def _served(folder: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(folder))) as client:
        engine = client.app.state.attnserve.engine  # type: ignore[attr-defined]
        fc_in = engine.model.blocks[0].mlp.fc_in
        if not (engine.prepacked and isinstance(fc_in, PackedLinear) and fc_in.attr == "gelu"):
            pytest.skip("oneDNN packing is not available here")
        yield client


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("gpt2-wide")
    (folder / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    backend = train_bpe([str(folder / "corpus.txt")], 400, ["<|endoftext|>"])
    backend.save(str(folder / "tokenizer.json"))
    eos = backend.token_to_id("<|endoftext|>")
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=WIDE, vocab_size=backend.get_vocab_size(),
                                     n_positions=128, bos_token_id=eos, eos_token_id=eos)
    hf = randomize_(transformers.GPT2LMHeadModel(config), seed=0, std=0.1).eval()
    hf.save_pretrained(folder)
    return folder, hf


@pytest.fixture(scope="module")
def gpt2_client(gpt2: tuple[Path, object]) -> Iterator[TestClient]:
    yield from _served(gpt2[0])


def test_greedy_generation_matches_transformers(gpt2_client: TestClient, gpt2: tuple[Path, object]) -> None:
    folder, hf = gpt2
    tokenizer = Tokenizer.from_dir(folder)
    for prompt in PROMPTS:
        body = {"inputs": prompt, "parameters": {"max_new_tokens": 8, "details": True, "ignore_eos": True}}
        got = [t["id"] for t in gpt2_client.post("/generate", json=body).json()["details"]["tokens"]]
        ids = torch.tensor([tokenizer.encode(prompt).ids])
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,  # type: ignore[attr-defined]
                              min_new_tokens=8, do_sample=False)
        assert got == out[0, ids.shape[1]:].tolist(), prompt


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sentence_bert(tmp_path_factory.mktemp("bert-wide"), WIDE, 2 * WIDE, normalize=False, std=0.05)


def test_packed_embed_matches_transformers(bert: Path) -> None:
    for client in _served(bert):
        got = torch.tensor(client.post("/embed", json={"inputs": PROMPTS, "normalize": False}).json())
        expected = hf_mean_pooled(bert, PROMPTS)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
