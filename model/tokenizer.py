"""Text <-> token ids through Hugging Face `tokenizers`, with offsets and streaming decode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors

GPT2_EOS = "<|endoftext|>"


@dataclass(frozen=True)
class Encoding:
    ids: list[int]
    offsets: list[tuple[int, int]]  # character span (start, stop) of each token in the input text


class Tokenizer:
    def __init__(self, backend: HFTokenizer, eos_token_id: int | None = None,
                 bos_token_id: int | None = None, chat_template: str | None = None) -> None:
        self.backend = backend
        self.eos_token_id = eos_token_id
        self.bos_token_id = bos_token_id
        self.chat_template = chat_template
        self.special_ids = {i for i, t in backend.get_added_tokens_decoder().items() if t.special}

    @classmethod
    def from_dir(cls, path: str | Path, eos_token_id: int | None = None,
                 bos_token_id: int | None = None) -> Tokenizer:
        """Load `tokenizer.json`, GPT-2's `vocab.json` + `merges.txt`, or BERT's `vocab.txt`."""
        path = Path(path)
        if (path / "tokenizer.json").is_file():
            backend = HFTokenizer.from_file(str(path / "tokenizer.json"))
        elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            backend = HFTokenizer(models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt")))
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            backend.decoder = decoders.ByteLevel()
            backend.post_processor = processors.ByteLevel(trim_offsets=False)
            # GPT-2's one special token (its BOS, EOS and UNK), registered as transformers does:
            # matched whole in the text, skipped when decoding, reported by is_special.
            if backend.token_to_id(GPT2_EOS) is not None:
                backend.add_special_tokens([GPT2_EOS])
        elif (path / "vocab.txt").is_file():
            backend = _wordpiece(path)
        else:
            raise FileNotFoundError(
                f"no tokenizer in {path}: expected tokenizer.json, vocab.json + merges.txt, or vocab.txt")
        config = _read_json(path / "tokenizer_config.json")
        template = config.get("chat_template")
        if isinstance(template, list):  # several named templates: take the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        return cls(backend, eos_token_id, bos_token_id, template if isinstance(template, str) else None)

    @property
    def vocab_size(self) -> int:
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, add_special_tokens: bool = True) -> Encoding:
        enc = self.backend.encode(text, add_special_tokens=add_special_tokens)
        return Encoding(list(enc.ids), [(int(a), int(b)) for a, b in enc.offsets])

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[Encoding]:
        encs = self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        return [Encoding(list(e.ids), [(int(a), int(b)) for a, b in e.offsets]) for e in encs]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return str(self.backend.decode(ids, skip_special_tokens=skip_special_tokens))

    def token_text(self, token_id: int) -> str:
        """The text of one token on its own (a partial UTF-8 character shows as U+FFFD)."""
        return self.decode([token_id])

    def is_special(self, token_id: int) -> bool:
        return token_id in self.special_ids

    def save(self, path: str | Path) -> None:
        self.backend.save(str(Path(path) / "tokenizer.json"))


class IncrementalDecoder:
    """Decodes a growing list of ids into text pieces that never split a UTF-8 character.

    As in TGI: re-decode a short window of recent ids and emit only what is new, holding
    the text back while it ends in U+FFFD (an incomplete multi-byte character).
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = False) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (possibly empty)."""
        self.ids.append(token_id)
        decode = self.tokenizer.decode
        prefix = decode(self.ids[self.prefix_offset:self.read_offset], self.skip_special_tokens)
        text = decode(self.ids[self.prefix_offset:], self.skip_special_tokens)
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return text[len(prefix):]
        return ""

    def flush(self) -> str:
        """Whatever is still held back at the end of the stream (a dangling partial character)."""
        decode = self.tokenizer.decode
        prefix = decode(self.ids[self.prefix_offset:self.read_offset], self.skip_special_tokens)
        text = decode(self.ids[self.prefix_offset:], self.skip_special_tokens)
        self.prefix_offset = self.read_offset = len(self.ids)
        return text[len(prefix):]


def train_bpe(files: list[str], vocab_size: int, special_tokens: list[str]) -> HFTokenizer:
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on text files."""
    from tokenizers import trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train(files, trainer)
    return tok


def _wordpiece(path: Path) -> HFTokenizer:
    from tokenizers import normalizers

    lower = bool(_read_json(path / "tokenizer_config.json").get("do_lower_case", True))
    tok = HFTokenizer(models.WordPiece.from_file(str(path / "vocab.txt"), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lower)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    # Register BERT's specials, as its tokenizer.json does: then they are skipped when decoding,
    # reported by is_special, and matched whole in the text instead of split into word pieces.
    specials = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    tok.add_special_tokens([t for t in specials if tok.token_to_id(t) is not None])
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return tok


def _read_json(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
