"""attnserve's transformer: a pure PyTorch library (no web code).

Public API:
    ModelConfig, PRESETS          frozen config dataclass and named presets
    Transformer                   decoder (cfg.causal) or encoder; forward(idx, positions, key_mask,
                                  cache, need_weights) -> TransformerOutput(hidden, attentions)
    KVCache                       slot-based key/value cache for batched incremental decoding
    prefill, decode, generate     generation as small functions
    SamplingParams, select_tokens, token_logprobs, top_logprobs, make_generator
    Tokenizer, IncrementalDecoder, Encoding
    load_checkpoint, save_checkpoint, LoadedModel, CheckpointError, DEFAULT_MODEL_DIR
    pool, embed                   sentence embeddings from token states; a packed batch of inputs
    resolve_device, resolve_dtype

Shape glossary: B batch, T query tokens this step, S key positions (cached past + this step),
C d_model, nh heads, hs head size (C // nh), V vocabulary.
"""

from .checkpoint import DEFAULT_MODEL_DIR, LoadedModel, load_checkpoint, save_checkpoint
from .config import PRESETS, ModelConfig
from .device import dtype_name, resolve_device, resolve_dtype
from .generate import decode, find_stop, generate, prefill
from .hf import CheckpointError
from .kv_cache import KVCache
from .pooling import embed, pool
from .sampling import SamplingParams, make_generator, select_tokens, token_logprobs, top_logprobs
from .tokenizer import Encoding, IncrementalDecoder, Tokenizer
from .transformer import Transformer, TransformerOutput

__all__ = [
    "DEFAULT_MODEL_DIR", "PRESETS", "CheckpointError", "Encoding", "IncrementalDecoder", "KVCache",
    "LoadedModel", "ModelConfig", "SamplingParams", "Tokenizer", "Transformer", "TransformerOutput",
    "decode", "dtype_name", "embed", "find_stop", "generate", "load_checkpoint", "make_generator", "pool", "prefill",
    "resolve_device", "resolve_dtype", "save_checkpoint", "select_tokens", "token_logprobs", "top_logprobs",
]
