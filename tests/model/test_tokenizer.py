"""The tokenizer wrapper: offsets, the GPT-2 file pair, streaming decode and stop strings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tokenizers import ByteLevelBPETokenizer

from model import IncrementalDecoder, Tokenizer, find_stop

from .helpers import EOS

TEXTS = [
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "  leading spaces,\ttabs and\n\nblank lines  ",
    "naïve café — “quotes” and 10,000 ducats",
    "emoji 😀👍🏽 and CJK 你好，世界 and 日本語のテキスト",
]


@pytest.fixture(scope="module")
def tok(bpe_dir: Path) -> Tokenizer:
    return Tokenizer.from_dir(bpe_dir)


@pytest.fixture(scope="module")
def multibyte_tok(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    """A BPE trained on CJK and emoji: its merges make tokens that end inside a character."""
    text = "你好世界，日本語のテキスト。😀👍🏽🎉 한국어 텍스트 ünïcödé " * 30
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=300, special_tokens=[EOS], show_progress=False)
    path = tmp_path_factory.mktemp("multibyte")
    bpe.save(str(path / "tokenizer.json"))
    return Tokenizer.from_dir(path)


@pytest.mark.parametrize("text", TEXTS)
def test_encode_decode_round_trip(tok: Tokenizer, text: str) -> None:
    enc = tok.encode(text)
    assert tok.decode(enc.ids) == text
    assert len(enc.ids) == len(enc.offsets)


@pytest.mark.parametrize("text", TEXTS)
def test_offsets_map_back_to_the_text(tok: Tokenizer, text: str) -> None:
    enc = tok.encode(text)
    starts = [a for a, _ in enc.offsets]
    assert starts == sorted(starts) and enc.offsets[0][0] == 0 and enc.offsets[-1][1] == len(text)
    for token_id, (a, b) in zip(enc.ids, enc.offsets, strict=True):
        assert 0 <= a < b <= len(text)
        piece = tok.token_text(token_id)
        if "\ufffd" not in piece:  # a whole-character token is exactly its span of the text
            assert piece == text[a:b]
    # Tokens never overlap except the bytes of one character split over several tokens.
    offsets = enc.offsets
    covered = "".join(text[a:b] for i, (a, b) in enumerate(offsets) if i == 0 or a >= offsets[i - 1][1])
    assert covered == text


def test_ascii_offsets_tile_the_text(tok: Tokenizer) -> None:
    text = TEXTS[0]
    enc = tok.encode(text)
    assert "".join(text[a:b] for a, b in enc.offsets) == text
    assert all(enc.offsets[i][1] == enc.offsets[i + 1][0] for i in range(len(enc.offsets) - 1))


def test_vocab_and_merges_give_the_same_ids(bpe_dir: Path, tmp_path: Path, tok: Tokenizer) -> None:
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(bpe_dir / name, tmp_path / name)
    pair = Tokenizer.from_dir(tmp_path)
    for text in TEXTS:
        assert pair.encode(text).ids == tok.encode(text).ids
        assert pair.encode(text).offsets == tok.encode(text).offsets
        assert pair.decode(pair.encode(text).ids) == text


def test_vocab_and_merges_register_the_eos_token(bpe_dir: Path, tmp_path: Path) -> None:
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(bpe_dir / name, tmp_path / name)
    pair = Tokenizer.from_dir(tmp_path)
    eos = pair.backend.token_to_id(EOS)
    assert eos is not None and pair.is_special(eos)
    ids = pair.encode(f"a{EOS}b").ids
    assert eos in ids  # one token, not "<", "|", "end", ...
    assert pair.decode(ids, skip_special_tokens=True) == "ab"


def test_encode_batch_equals_encode(tok: Tokenizer) -> None:
    batch = tok.encode_batch(TEXTS)
    assert [e.ids for e in batch] == [tok.encode(t).ids for t in TEXTS]
    assert [e.offsets for e in batch] == [tok.encode(t).offsets for t in TEXTS]


def test_special_tokens(tok: Tokenizer) -> None:
    eos = tok.backend.token_to_id(EOS)
    assert eos is not None
    assert tok.is_special(eos) and not tok.is_special(tok.encode("the").ids[0])
    ids = tok.encode(f"a{EOS}b").ids
    assert eos in ids  # a special token in the text is one token
    assert tok.decode(ids, skip_special_tokens=True) == "ab"
    assert tok.decode(ids) == f"a{EOS}b"
    assert 256 < tok.vocab_size <= 512  # every byte, plus merges (512 with the full corpus)


def test_missing_tokenizer_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        Tokenizer.from_dir(tmp_path)


def test_chat_template_from_tokenizer_config(bpe_dir: Path, tmp_path: Path) -> None:
    shutil.copy(bpe_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    assert Tokenizer.from_dir(tmp_path).chat_template is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    assert Tokenizer.from_dir(tmp_path).chat_template == "{{ messages }}"
    named = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": named}))
    assert Tokenizer.from_dir(tmp_path).chat_template == "D"


def _stream(tok: Tokenizer, ids: list[int], skip_special_tokens: bool = False) -> list[str]:
    decoder = IncrementalDecoder(tok, skip_special_tokens=skip_special_tokens)
    pieces = [decoder.push(i) for i in ids]
    return [*pieces, decoder.flush()]


STREAMS = [*TEXTS, "😀" * 5, "你好" * 7, "a😀b你c", "ü" * 9 + "🏽", "你好世界，日本語 😀👍🏽"]


@pytest.mark.parametrize("text", STREAMS)
def test_incremental_decoding_never_splits_a_character(tok: Tokenizer, multibyte_tok: Tokenizer,
                                                       text: str) -> None:
    for t in (tok, multibyte_tok):
        ids = t.encode(text).ids
        pieces = _stream(t, ids)
        assert "".join(pieces) == t.decode(ids) == text
        for piece in pieces:
            assert "\ufffd" not in piece
            piece.encode("utf-8")  # a lone surrogate or half character would fail here


def test_the_multibyte_case_is_really_exercised(tok: Tokenizer, multibyte_tok: Tokenizer) -> None:
    # Tokens that hold part of a character (shown as U+FFFD on their own) are what the decoder
    # must hold back; make sure the texts above contain them, for both tokenizers.
    for t in (tok, multibyte_tok):
        ids = t.encode("a😀b你c").ids
        assert any("\ufffd" in t.token_text(i) for i in ids)
        pieces = _stream(t, ids)
        assert "" in pieces[:-1]  # held back at least once
    # The trained one merges across character boundaries: a token holds the end of one
    # character and the start of the next.
    enc = multibyte_tok.encode("你好世界，日本語 😀👍🏽")
    assert any(b - a >= 2 and "\ufffd" in multibyte_tok.token_text(i)
               for i, (a, b) in zip(enc.ids, enc.offsets, strict=True))


def test_incremental_decoding_skips_special_tokens(tok: Tokenizer) -> None:
    eos = tok.backend.token_to_id(EOS)
    assert eos is not None
    ids = [*tok.encode("hello 😀").ids, eos, *tok.encode(" world").ids]
    assert "".join(_stream(tok, ids, skip_special_tokens=True)) == "hello 😀 world"
    assert "".join(_stream(tok, ids)) == f"hello 😀{EOS} world"


def test_flush_returns_a_dangling_partial_character(tok: Tokenizer) -> None:
    ids = tok.encode("ok 😀").ids
    decoder = IncrementalDecoder(tok)
    pieces = [decoder.push(i) for i in ids[:-1]]  # stop one byte short of the emoji
    assert "\ufffd" not in "".join(pieces)
    tail = decoder.flush()
    assert "".join(pieces) + tail == tok.decode(ids[:-1])
    assert tail.endswith("\ufffd")  # flushed as the replacement character at the very end
    assert decoder.flush() == ""


def test_incremental_decoding_of_a_long_stream(tok: Tokenizer, corpus_text: str) -> None:
    text = corpus_text[:3000] + " 😀 你好"
    ids = tok.encode(text).ids
    assert "".join(_stream(tok, ids)) == text


class TestFindStop:
    def test_earliest_stop_wins(self) -> None:
        assert find_stop("hello world. END", ["END", "."]) == 11
        assert find_stop("hello", ["x"]) is None
        assert find_stop("", ["x"]) is None

    def test_searches_only_where_a_stop_can_be_new(self) -> None:
        text = "STOP then more STOP"
        # Everything before index 10 was already checked; the first STOP is old, the second new.
        assert find_stop(text, ["STOP"], new_from=10) == 15
        # A stop straddling the boundary between old and new text is found.
        assert find_stop("abcST" + "OP", ["STOP"], new_from=5) == 3
        assert find_stop("STOP", ["STOP"], new_from=4) is None  # entirely old

    def test_multibyte_and_multiline_stops(self) -> None:
        assert find_stop("line one\n\nline two", ["\n\n"]) == 8
        assert find_stop("你好，世界", ["世界"], new_from=4) == 3
