"""Fixtures: a tiny model folder, an app on it through TestClient, and a live uvicorn server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from model import PRESETS, Tokenizer, Transformer, save_checkpoint
from model.tokenizer import train_bpe

ZEN = """Beautiful is better than ugly. Explicit is better than implicit. Simple is better than complex.
Complex is better than complicated. Flat is better than nested. Sparse is better than dense.
Readability counts. Special cases aren't special enough to break the rules.
Although practicality beats purity. Errors should never pass silently. Unless explicitly silenced.
In the face of ambiguity, refuse the temptation to guess. Now is better than never.
Although never is often better than right now. If the implementation is hard to explain, it's a bad idea.
If the implementation is easy to explain, it may be a good idea.
Namespaces are one honking great idea -- let's do more of those!
"""
CORPUS = ZEN * 4 + "Ünïcödé テキスト 😀 emoji 🎉 and more.\n" * 8


def build_tiny_model(folder: Path, seed: int = 0, **overrides: Any) -> Path:
    """A random-initialised tiny decoder with a real BPE tokenizer, saved as a model folder."""
    corpus = folder / "corpus.txt"
    folder.mkdir(parents=True, exist_ok=True)
    corpus.write_text(CORPUS, encoding="utf-8")
    backend = train_bpe([str(corpus)], 400, ["<|endoftext|>"])
    eos = backend.token_to_id("<|endoftext|>")
    torch.manual_seed(seed)
    cfg = PRESETS["tiny"].replace(vocab_size=backend.get_vocab_size(), eos_token_id=eos, bos_token_id=eos,
                                  **overrides)
    model = Transformer(cfg)
    with torch.no_grad():  # sharper logits than N(0, 0.02) gives: greedy choices far from ties
        model.tok_emb.weight.mul_(20)
    save_checkpoint(model, Tokenizer(backend, eos_token_id=eos), folder / "model")
    return folder / "model"


def build_sentence_bert(folder: Path, hidden: int = 64, intermediate: int = 128, normalize: bool = True,
                        std: float | None = None) -> Path:
    """A random BertModel saved as a sentence-transformers folder (mean pooling, optionally Normalize).

    std: re-draw the weights N(0, std) (tests/model/helpers.randomize_) instead of BERT's init.
    """
    import transformers
    from tokenizers import BertWordPieceTokenizer

    from ..model.helpers import randomize_

    (folder / "corpus.txt").write_text(ZEN * 3)
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train([str(folder / "corpus.txt")], vocab_size=300)
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=intermediate, max_position_embeddings=128)
    bert = transformers.BertModel(cfg, add_pooling_layer=False)
    if std is not None:
        randomize_(bert, seed=1, std=std)
    bert.save_pretrained(folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}))
    return folder


def hf_mean_pooled(folder: Path, texts: list[str]) -> torch.Tensor:
    """transformers' BertModel on a sentence-transformers folder, mean-pooled over real tokens (B, C)."""
    import transformers

    hf = transformers.BertModel.from_pretrained(folder).eval()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="[PAD]")
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled: torch.Tensor = (hidden * mask).sum(1) / mask.sum(1)
    return pooled


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def make_settings(model_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {"model": model_dir, "torch_threads": 1, "stream_keepalive_s": 5.0}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(model_dir))) as c:
        yield c


class LiveServer:
    """uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app: FastAPI) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def metric(self, name: str) -> float:
        """The value of an unlabelled sample in /metrics."""
        for line in httpx.get(self.url + "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)


@pytest.fixture(scope="module")
def live(model_dir: Path) -> Iterator[LiveServer]:
    with LiveServer(create_app(make_settings(model_dir))) as server:
        yield server
