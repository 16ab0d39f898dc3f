"""The benchmark's models, built once offline into a cache folder (bench/out/models/).

    gpt2-small        GPT2LMHeadModel(GPT2Config()): 124M parameters, random-initialised, with a
                      byte-level BPE (vocab 50257) trained on the corpus; loaded by attnserve
                      (model_type gpt2) and by transformers from the very same files.
    default           the built-in default model (model/default) when it exists; until then a
                      stand-in of its shape (PRESETS["shakespeare"], random weights, its BPE).
    gpt2-default-size a GPT-2 folder of the default model's size, for transformers' figure on
                      "a model of that size" (target 4).
    encoder           an all-MiniLM-L6-v2-shaped BERT (6 layers, 384 wide) as a sentence-
                      transformers folder (mean pooling, Normalize), for /embed against encode().

`python -m bench.models [--scale smoke]` builds them and prints where they are.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model import DEFAULT_MODEL_DIR, PRESETS, Tokenizer, Transformer, save_checkpoint
from model.tokenizer import train_bpe

from . import DEFAULT_OUT
from .prompts import DEFAULT_CORPUS, load_corpus
from .report import emit

EOS = "<|endoftext|>"

# Shapes per scale: "full" is what the issue names; "smoke" builds in about a second for tests.
SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "gpt2": {},  # GPT2Config() defaults: 12 layers, 768 wide, 12 heads, 1024 positions, vocab 50257
        "default": {},  # PRESETS["shakespeare"]
        "encoder": {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
                    "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512},
    },
    "smoke": {
        "gpt2": {"n_layer": 2, "n_head": 4, "n_embd": 128, "vocab_size": 1024, "n_positions": 256},
        "default": {"vocab_size": 512, "max_seq_len": 128, "d_model": 64, "n_layers": 2, "n_heads": 4,
                    "d_ff": 256},
        "encoder": {"vocab_size": 1024, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "intermediate_size": 128, "max_position_embeddings": 128},
    },
}


@dataclass(frozen=True)
class ModelSet:
    gpt2: Path
    default: Path  # the folder served as the default model
    default_is_builtin: bool  # False: a random stand-in (model/default is not there yet)
    gpt2_default_size: Path
    encoder: Path


def _corpus_file(root: Path, corpus: Path | None, scale: str) -> Path:
    """A file to train tokenizers on (the tokenizers library reads files); 50 KB of it for smoke."""
    if scale == "full" and corpus is not None:
        return corpus
    if scale == "full" and DEFAULT_CORPUS.is_file():
        return DEFAULT_CORPUS
    path = root / f"corpus-{scale}.txt"
    if not path.is_file():
        text = load_corpus(corpus)
        path.write_text(text if scale == "full" else text[:50_000], encoding="utf-8")
    return path


def _fresh(path: Path, recipe: dict[str, Any]) -> bool:
    """True if `path` was built from this very recipe (then it is reused)."""
    marker = path / "bench_recipe.json"
    return marker.is_file() and json.loads(marker.read_text()) == recipe


def _mark(path: Path, recipe: dict[str, Any]) -> None:
    (path / "bench_recipe.json").write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")


def _build_into(path: Path, build: Any) -> None:
    """Build in a temporary sibling and rename, so an interrupted build never looks complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".tmp"))
    try:
        build(tmp)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def gpt2_folder(path: Path, corpus: Path, shape: dict[str, Any], seed: int = 0,
                tokenizer_from: Path | None = None) -> Path:
    """A random-initialised GPT2LMHeadModel saved with save_pretrained, plus a tokenizer.json."""
    recipe = {"kind": "gpt2", "shape": shape, "seed": seed, "tokenizer_from": str(tokenizer_from)}
    if _fresh(path, recipe):
        return path

    def build(tmp: Path) -> None:
        from transformers import GPT2Config, GPT2LMHeadModel

        if tokenizer_from is not None:
            shutil.copy(tokenizer_from / "tokenizer.json", tmp / "tokenizer.json")
            backend = Tokenizer.from_dir(tmp).backend
        else:
            backend = train_bpe([str(corpus)], int(shape.get("vocab_size", 50257)), [EOS])
            backend.save(str(tmp / "tokenizer.json"))
        eos = backend.token_to_id(EOS)
        cfg = GPT2Config(**shape, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
        torch.manual_seed(seed)
        GPT2LMHeadModel(cfg).save_pretrained(tmp)
        _mark(tmp, recipe)

    _build_into(path, build)
    return path


def default_standin(path: Path, corpus: Path, shape: dict[str, Any], seed: int = 0) -> Path:
    """The default model's shape with random weights and a BPE trained as model.train trains it."""
    recipe = {"kind": "attnserve", "shape": shape, "seed": seed}
    if _fresh(path, recipe):
        return path

    def build(tmp: Path) -> None:
        base = PRESETS["shakespeare"].replace(dropout=0.0, **shape)
        backend = train_bpe([str(corpus)], base.vocab_size, [EOS])
        eos = backend.token_to_id(EOS)
        cfg = base.replace(vocab_size=backend.get_vocab_size(), eos_token_id=eos, bos_token_id=eos)
        torch.manual_seed(seed)
        save_checkpoint(Transformer(cfg), Tokenizer(backend, eos_token_id=eos), tmp)
        _mark(tmp, recipe)

    _build_into(path, build)
    return path


def default_as_gpt2_shape(default: Path) -> dict[str, Any]:
    """GPT2Config fields of the same size as an attnserve model folder."""
    cfg = json.loads((default / "config.json").read_text())
    return {"n_layer": cfg["n_layers"], "n_head": cfg["n_heads"], "n_embd": cfg["d_model"],
            "n_inner": cfg["d_ff"], "vocab_size": cfg["vocab_size"], "n_positions": cfg["max_seq_len"]}


def _randomize(module: torch.nn.Module, seed: int, std: float) -> None:
    """Spread the weights (N(0, 0.02) makes every sentence's vector nearly the same, and then
    a cosine check against the reference would pass even for a wrong model)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen) * std
            if p.dim() >= 2:
                p.copy_(noise)
            else:
                p.add_(noise)


def encoder_folder(path: Path, corpus: Path, shape: dict[str, Any], seed: int = 0) -> Path:
    """A BERT of all-MiniLM-L6-v2's shape as a sentence-transformers folder (mean pooling, Normalize)."""
    recipe = {"kind": "sentence-transformers", "shape": shape, "seed": seed}
    if _fresh(path, recipe):
        return path

    def build(tmp: Path) -> None:
        from tokenizers import BertWordPieceTokenizer
        from transformers import BertConfig, BertModel

        trainer = BertWordPieceTokenizer(lowercase=True)
        trainer.train([str(corpus)], vocab_size=shape["vocab_size"], show_progress=False)
        trainer.save_model(str(tmp))
        # Loaded back from vocab.txt it has BERT's [CLS] ... [SEP] post-processor.
        BertWordPieceTokenizer(str(tmp / "vocab.txt"), lowercase=True).save(str(tmp / "tokenizer.json"))
        torch.manual_seed(seed)
        model = BertModel(BertConfig(pad_token_id=0, **shape), add_pooling_layer=False)
        _randomize(model, seed, std=0.05)
        model.save_pretrained(tmp)
        _write_sentence_transformers_files(tmp, shape)
        _mark(tmp, recipe)

    _build_into(path, build)
    return path


def _write_sentence_transformers_files(folder: Path, shape: dict[str, Any]) -> None:
    kinds = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    modules = [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
               for i, (path, kind) in enumerate(kinds)]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "1_Pooling").mkdir()
    (folder / "2_Normalize").mkdir()
    pooling = {"word_embedding_dimension": shape["hidden_size"], "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    max_len = min(256, shape["max_position_embeddings"])
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_len,
                                                                  "do_lower_case": False}))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": max_len,
        "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
        "mask_token": "[MASK]"}))


def build_all(root: Path, corpus: Path | None = None, scale: str = "full",
              use_builtin_default: bool = True) -> ModelSet:
    """Every model the suite needs, built where missing; the built-in default model when present."""
    shapes = SHAPES[scale]
    root.mkdir(parents=True, exist_ok=True)
    text = _corpus_file(root, corpus, scale)
    builtin = use_builtin_default and scale == "full" and (DEFAULT_MODEL_DIR / "config.json").is_file()
    default = DEFAULT_MODEL_DIR if builtin else default_standin(root / f"default-standin-{scale}", text,
                                                                shapes["default"])
    gpt2_dir = root / ("gpt2-small" if scale == "full" else f"gpt2-{scale}")
    return ModelSet(
        gpt2=gpt2_folder(gpt2_dir, text, shapes["gpt2"]),
        default=default, default_is_builtin=builtin,
        gpt2_default_size=gpt2_folder(root / f"gpt2-default-size-{scale}", text,
                                      default_as_gpt2_shape(default), tokenizer_from=default),
        encoder=encoder_folder(root / f"encoder-minilm-{scale}", text, shapes["encoder"]),
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=DEFAULT_OUT / "models")
    p.add_argument("--corpus", type=Path, default=None)
    p.add_argument("--scale", choices=sorted(SHAPES), default="full")
    args = p.parse_args(argv)
    models = build_all(args.root, args.corpus, args.scale)
    for name, value in vars(models).items():
        emit(f"{name}: {value}")


if __name__ == "__main__":
    main()
