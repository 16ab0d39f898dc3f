"""Prefill, decode and a plain generation loop, as small functions over a Transformer.

The service's engine calls `prefill` and `decode` itself (it schedules many sequences);
`generate` is the one-sequence loop for scripts and tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .kv_cache import KVCache
from .sampling import SamplingParams, make_generator, select_tokens
from .transformer import Transformer


def prefill(model: Transformer, prompts: Sequence[Sequence[int]], cache: KVCache, first_slot: int = 0,
            start: Sequence[int] | None = None, slots: Sequence[int] | None = None) -> Tensor:
    """Run prompts (or prompt chunks) into cache slots and return each one's last logits (B, V).

    The slots are first_slot, first_slot + 1, ... unless given explicitly; `start[i]` is the
    position of chunk i's first token (0 for a whole prompt, the cached length for a later chunk).

    The chunks are packed into one row of tokens, not padded to the longest: every linear layer
    computes real tokens only (right padding of our benchmark prompts computed 20% more) and
    each chunk attends to its own slot.
    """
    device = cache.k.device
    lengths = [len(p) for p in prompts]
    if min(lengths) == 0:
        raise ValueError("prefill needs at least one token in every prompt (chunk)")
    starts = list(start) if start is not None else [0] * len(prompts)
    rows = list(slots) if slots is not None else list(range(first_slot, first_slot + len(prompts)))
    idx = torch.tensor([[t for p in prompts for t in p]], dtype=torch.long)  # (1, N)
    positions = torch.tensor([[s + i for s, n in zip(starts, lengths, strict=True) for i in range(n)]])
    out = model(idx.to(device), positions.to(device), cache=cache.packed(rows, starts, lengths))
    last = torch.tensor(lengths).cumsum(0) - 1  # each chunk's last token in the packed row
    return model.logits(out.hidden[0, last.to(device)])  # (B, V)


def decode(model: Transformer, tokens: Tensor, positions: Tensor, cache: KVCache, kv_len: int,
           first_slot: int = 0, slots: Sequence[int] | None = None) -> Tensor:
    """One step for a batch of running sequences: tokens (B,) at positions (B,) -> logits (B, V).

    kv_len is max(positions) + 1, passed in by the caller (who knows it) to avoid a device sync.
    """
    rows = slots if slots is not None else slice(first_slot, first_slot + tokens.shape[0])
    out = model(tokens.unsqueeze(1), positions.unsqueeze(1), cache=cache.view(rows, kv_len))
    return model.logits(out.hidden[:, -1])


@torch.inference_mode()
def generate(model: Transformer, prompt: Sequence[int], max_new_tokens: int,
             params: SamplingParams | None = None, eos_token_id: int | None = None) -> list[int]:
    """Generate up to max_new_tokens after `prompt` (stops after EOS). Returns the new ids."""
    params = params or SamplingParams()
    device = next(model.parameters()).device
    total = len(prompt) + max_new_tokens
    if total > model.cfg.max_seq_len:
        raise ValueError(f"prompt ({len(prompt)}) + max_new_tokens ({max_new_tokens}) exceeds the "
                         f"model's context of {model.cfg.max_seq_len} tokens")
    cache = model.new_cache(1, total)
    generator = make_generator(params.seed, device) if params.do_sample else None
    # The sequence so far, kept only when the repetition penalty needs it.
    seen = torch.tensor(list(prompt), device=device) if params.repetition_penalty != 1.0 else None
    logits = prefill(model, [prompt], cache)
    out: list[int] = []
    for step in range(max_new_tokens):
        token = select_tokens(logits, [params], [generator], [seen])
        out.append(int(token[0]))
        if out[-1] == eos_token_id or step == max_new_tokens - 1:
            break
        if seen is not None:
            seen = torch.cat([seen, token])
        pos = len(prompt) + step
        logits = decode(model, token, torch.tensor([pos], device=device), cache, pos + 1)
    return out


def find_stop(text: str, stops: Sequence[str], new_from: int = 0) -> int | None:
    """Index in `text` where the earliest stop string begins, searching only where it could be new."""
    best: int | None = None
    for stop in stops:
        at = text.find(stop, max(0, new_from - len(stop) + 1))
        if at != -1 and (best is None or at < best):
            best = at
    return best
