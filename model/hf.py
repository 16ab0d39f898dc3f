"""Converters from Hugging Face checkpoints (GPT-2, BERT) to attnserve's Transformer.

Only names and layouts change here; the maths is the same parts as our own models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .config import ModelConfig, Pooling

HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
                  "gelu": "gelu", "relu": "relu"}


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message says what is wrong."""


def _activation(name: str, where: str) -> Any:
    if name not in HF_ACTIVATIONS:
        raise CheckpointError(f"{where}: unsupported activation {name!r}")
    return HF_ACTIVATIONS[name]


def gpt2_config(hf: dict[str, Any]) -> ModelConfig:
    for flag, supported in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                            ("reorder_and_upcast_attn", False)):
        if hf.get(flag, supported) != supported:
            raise CheckpointError(f"config.json: {flag}={hf[flag]!r} is not supported")
    d = int(hf["n_embd"])
    return ModelConfig(
        vocab_size=int(hf["vocab_size"]), max_seq_len=int(hf["n_positions"]), d_model=d,
        n_layers=int(hf["n_layer"]), n_heads=int(hf["n_head"]), d_ff=int(hf.get("n_inner") or 4 * d),
        causal=True, pos_encoding="learned",
        activation=_activation(hf.get("activation_function", "gelu_new"), "config.json activation_function"),
        norm_position="pre", final_norm=True, tie_embeddings=True,
        norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
        pooling="mean", bos_token_id=hf.get("bos_token_id"), eos_token_id=hf.get("eos_token_id"),
    )


def gpt2_state_dict(sd: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """GPT-2's names -> ours; its Conv1D weights are stored (in, out), nn.Linear wants (out, in)."""
    sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
    out = {"tok_emb.weight": sd["wte.weight"], "pos_emb.weight": sd["wpe.weight"],
           "ln_f.weight": sd["ln_f.weight"], "ln_f.bias": sd["ln_f.bias"]}
    renames = {"ln_1": "ln_1", "ln_2": "ln_2", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj",
               "mlp.c_fc": "mlp.fc_in", "mlp.c_proj": "mlp.fc_out"}
    for i in range(cfg.n_layers):
        for theirs, ours in renames.items():
            weight = sd[f"h.{i}.{theirs}.weight"]
            out[f"blocks.{i}.{ours}.weight"] = weight if theirs.startswith("ln") else weight.t().contiguous()
            out[f"blocks.{i}.{ours}.bias"] = sd[f"h.{i}.{theirs}.bias"]
    return out


def bert_config(hf: dict[str, Any], folder: Path) -> ModelConfig:
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"config.json: position_embedding_type {hf['position_embedding_type']!r} "
                              "is not supported (only 'absolute')")
    pooling, normalize = sentence_transformers_pooling(folder)
    return ModelConfig(
        vocab_size=int(hf["vocab_size"]), max_seq_len=int(hf["max_position_embeddings"]),
        d_model=int(hf["hidden_size"]), n_layers=int(hf["num_hidden_layers"]),
        n_heads=int(hf["num_attention_heads"]), d_ff=int(hf["intermediate_size"]), causal=False,
        pos_encoding="learned",
        activation=_activation(hf.get("hidden_act", "gelu"), "config.json hidden_act"),
        norm_position="post", final_norm=False, embed_norm=True,
        type_vocab_size=int(hf.get("type_vocab_size", 2)),
        tie_embeddings=False, lm_head=False, norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
        pooling=pooling, normalize_embeddings=normalize, pad_token_id=hf.get("pad_token_id"),
    )


def bert_state_dict(sd: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    sd = {k.removeprefix("bert."): v for k, v in sd.items()}
    emb = "embeddings."
    out = {"tok_emb.weight": sd[emb + "word_embeddings.weight"],
           "pos_emb.weight": sd[emb + "position_embeddings.weight"],
           "type_emb.weight": sd[emb + "token_type_embeddings.weight"],
           "emb_norm.weight": sd[emb + "LayerNorm.weight"], "emb_norm.bias": sd[emb + "LayerNorm.bias"]}
    for i in range(cfg.n_layers):
        layer, ours = f"encoder.layer.{i}.", f"blocks.{i}."
        att = layer + "attention.self."
        for part in ("weight", "bias"):
            out[ours + "attn.qkv." + part] = torch.cat(
                [sd[att + "query." + part], sd[att + "key." + part], sd[att + "value." + part]])
            out[ours + "attn.proj." + part] = sd[layer + "attention.output.dense." + part]
            out[ours + "ln_1." + part] = sd[layer + "attention.output.LayerNorm." + part]
            out[ours + "mlp.fc_in." + part] = sd[layer + "intermediate.dense." + part]
            out[ours + "mlp.fc_out." + part] = sd[layer + "output.dense." + part]
            out[ours + "ln_2." + part] = sd[layer + "output.LayerNorm." + part]
    return out


def sentence_transformers_pooling(folder: Path) -> tuple[Pooling, bool]:
    """Pooling and normalisation from modules.json and the Pooling module's config (mean, no L2 if absent)."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return "mean", False
    modules = json.loads(modules_file.read_text())
    pooling: Pooling = "mean"
    normalize = False
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith("Normalize"):
            normalize = True
        elif kind.endswith("Pooling"):
            cfg_file = folder / module.get("path", "1_Pooling") / "config.json"
            if not cfg_file.is_file():
                raise CheckpointError(f"missing file {cfg_file} (named by modules.json)")
            pool = json.loads(cfg_file.read_text())
            if pool.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif pool.get("pooling_mode_max_tokens"):
                pooling = "max"
            elif pool.get("pooling_mode_lasttoken"):
                pooling = "last"
            elif pool.get("pooling_mode_mean_tokens"):
                pooling = "mean"
            else:
                raise CheckpointError(f"{cfg_file}: no supported pooling mode is enabled")
    return pooling, normalize
