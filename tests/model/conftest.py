"""Fixtures for the model/ tests: a small corpus and a byte-level BPE trained on it.

Every test runs on one CPU thread (a training job may share this machine) and builds its
models from fixed seeds, so the suite is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from tokenizers import Tokenizer as HFTokenizer

from .helpers import CORPUS, EOS, FALLBACK_TEXT


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def corpus_text() -> str:
    """About 50 KB of text: the start of Tiny Shakespeare, or an inline stand-in."""
    if CORPUS.is_file():
        return CORPUS.read_text(encoding="utf-8")[:50_000]
    return FALLBACK_TEXT * 40


@pytest.fixture(scope="session")
def corpus_file(corpus_text: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(corpus_text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def bpe(corpus_text: str) -> ByteLevelBPETokenizer:
    """A byte-level BPE (GPT-2's scheme) with 512 tokens; id 0 is the EOS special token."""
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator([corpus_text], vocab_size=512, special_tokens=[EOS], show_progress=False)
    assert tok.token_to_id(EOS) == 0
    return tok


@pytest.fixture(scope="session")
def bpe_dir(bpe: ByteLevelBPETokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The BPE saved both ways: tokenizer.json, and GPT-2's vocab.json + merges.txt."""
    path = tmp_path_factory.mktemp("bpe")
    bpe.save(str(path / "tokenizer.json"))
    bpe.save_model(str(path))
    return path


@pytest.fixture(scope="session")
def bpe_backend(bpe_dir: Path) -> HFTokenizer:
    return HFTokenizer.from_file(str(bpe_dir / "tokenizer.json"))
