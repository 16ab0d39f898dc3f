"""Checkpoints as Hugging Face style folders: config.json + model.safetensors + tokenizer.json.

Loads our own models and, through `hf.py`, GPT-2 and BERT / sentence-transformers folders.
Weights are never unpickled: safetensors, or torch.load(weights_only=True) for a .bin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from . import hf
from .config import ModelConfig
from .hf import CheckpointError
from .tokenizer import Tokenizer
from .transformer import Transformer

logger = logging.getLogger(__name__)

MODEL_TYPE = "attnserve"
DEFAULT_MODEL_DIR = Path(__file__).parent / "default"

Converter = Callable[[dict[str, Tensor], ModelConfig], dict[str, Tensor]]


@dataclass
class LoadedModel:
    model: Transformer
    tokenizer: Tokenizer
    model_type: str  # "attnserve", "gpt2" or "bert"
    path: Path


def save_checkpoint(model: Transformer, tokenizer: Tokenizer | None, path: str | Path,
                    dtype: torch.dtype | None = None, extra: dict[str, Any] | None = None) -> None:
    """Write config.json, model.safetensors (tied weights stored once) and tokenizer.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype or v.dtype).contiguous().cpu() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "model.safetensors").chmod(0o644)  # safetensors writes 600: unreadable to a container's user
    config = {"model_type": MODEL_TYPE, **model.cfg.to_dict(), **(extra or {})}
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save(path)


def load_checkpoint(path: str | Path | None = None, device: torch.device | str = "cpu",
                    dtype: torch.dtype | None = None) -> LoadedModel:
    """Load a model folder (the built-in default model when path is None)."""
    path = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if not path.is_dir():
        raise CheckpointError(f"model folder {path} does not exist")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"missing file {config_file}")
    raw = json.loads(config_file.read_text())
    model_type = raw.get("model_type")
    convert: Converter | None
    if model_type == MODEL_TYPE:
        fields = {k: v for k, v in raw.items() if k in ModelConfig.__dataclass_fields__}
        cfg, convert = ModelConfig.from_dict(fields), None
    elif model_type == "gpt2":
        cfg, convert = hf.gpt2_config(raw), hf.gpt2_state_dict
    elif model_type == "bert":
        cfg, convert = hf.bert_config(raw, path), hf.bert_state_dict
    else:
        raise CheckpointError(f"{config_file}: unknown model_type {model_type!r} "
                              f"(supported: {MODEL_TYPE}, gpt2, bert)")
    state = read_weights(path)
    if convert is not None:
        try:
            state = convert(state, cfg)
        except KeyError as missing:
            raise CheckpointError(f"{path}: weight {missing} is missing for a {model_type} model") from None
    model = Transformer(cfg.replace(dropout=0.0))
    _check_shapes(model, state, path)
    model.load_state_dict(state, strict=False)  # the tied head is filled by the embedding
    model.to(device=device, dtype=dtype).eval()
    tokenizer = Tokenizer.from_dir(path, eos_token_id=cfg.eos_token_id, bos_token_id=cfg.bos_token_id)
    logger.info("loaded %s model from %s: %.1fM parameters", model_type, path, model.num_parameters() / 1e6)
    return LoadedModel(model, tokenizer, str(model_type), path)


def read_weights(path: Path) -> dict[str, Tensor]:
    if (path / "model.safetensors").is_file():
        return load_file(str(path / "model.safetensors"))
    if (path / "pytorch_model.bin").is_file():
        loaded = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return dict(loaded)
    raise CheckpointError(f"missing weights in {path}: expected model.safetensors or pytorch_model.bin")


def _check_shapes(model: Transformer, state: dict[str, Tensor], path: Path) -> None:
    expected = model.state_dict()
    if model.cfg.tie_embeddings:
        expected.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointError(f"{path}: missing weights {', '.join(missing[:5])}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{path}: weight {key} has shape {tuple(state[key].shape)}, "
                                  f"the config implies {tuple(tensor.shape)}")
