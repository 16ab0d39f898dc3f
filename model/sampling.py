"""Turning logits into the next token: small functions over a batch of rows.

Every function takes (B, V) logits and per-row parameters, so one call serves a
batch whose requests asked for different things. Random draws use one generator
per row: a seed gives the same tokens whatever else shares the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SamplingParams:
    do_sample: bool = False  # False: greedy (argmax), and the knobs below are ignored
    temperature: float = 1.0
    top_k: int = 0  # keep the k most likely tokens; 0 keeps all
    top_p: float = 1.0  # keep the smallest set of tokens whose probability reaches p
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the sequence (CTRL)
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")


def apply_repetition_penalty(logits: Tensor, seen: list[Tensor | None], penalty: list[float]) -> Tensor:
    """Divide positive (multiply negative) logits of tokens each row has already seen."""
    for row, (ids, p) in enumerate(zip(seen, penalty, strict=True)):
        if ids is None or p == 1.0:
            continue
        scores = logits[row, ids]
        logits[row, ids] = torch.where(scores > 0, scores / p, scores * p)
    return logits


def apply_temperature(logits: Tensor, temperature: Tensor) -> Tensor:
    """temperature: (B,); flattens (> 1) or sharpens (< 1) the distribution."""
    return logits / temperature.unsqueeze(1)


def top_k_top_p_filter(logits: Tensor, top_k: Tensor, top_p: Tensor) -> Tensor:
    """Set to -inf every token outside each row's top-k and nucleus (top-p). top_k 0 = off."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    V = logits.shape[-1]
    rank = torch.arange(V, device=logits.device).unsqueeze(0)
    k = torch.where(top_k > 0, top_k, V).unsqueeze(1)
    drop = rank >= k
    probs = sorted_logits.masked_fill(drop, float("-inf")).softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above
    drop |= mass_before >= top_p.unsqueeze(1)  # the top token is always kept
    filtered = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(1, order, filtered)


def sample_from(probs: Tensor, generators: list[torch.Generator | None]) -> Tensor:
    """One draw per row: argmax(p / E) with E ~ Exp(1) is a sample from p, with no host sync."""
    noise = torch.empty_like(probs)
    for row, gen in enumerate(generators):
        noise[row].exponential_(1.0, generator=gen)
    return (probs / noise).argmax(dim=-1)


def select_tokens(logits: Tensor, params: list[SamplingParams], generators: list[torch.Generator | None],
                  seen: list[Tensor | None] | None = None) -> Tensor:
    """The next token of every row (B,), each under its own SamplingParams."""
    logits = logits.float()
    penalties = [p.repetition_penalty for p in params]
    if seen is not None and any(p != 1.0 for p in penalties):
        logits = apply_repetition_penalty(logits.clone(), seen, penalties)
    tokens = logits.max(dim=-1).indices  # argmax (the first of equal maxima), which is slower on CPU
    sampled = [i for i, p in enumerate(params) if p.do_sample]
    if not sampled:
        return tokens
    rows = torch.tensor(sampled, device=logits.device)
    sub = logits[rows]
    temperature = torch.tensor([params[i].temperature for i in sampled], device=logits.device)
    sub = apply_temperature(sub, temperature)
    if any(params[i].top_k > 0 or params[i].top_p < 1.0 for i in sampled):
        top_k = torch.tensor([params[i].top_k for i in sampled], device=logits.device)
        top_p = torch.tensor([params[i].top_p for i in sampled], device=logits.device)
        sub = top_k_top_p_filter(sub, top_k, top_p)
    tokens[rows] = sample_from(sub.softmax(dim=-1), [generators[i] for i in sampled])
    return tokens


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """log p(token) under the model's distribution, per row: (B, V), (B,) -> (B,)."""
    return logits.float().log_softmax(dim=-1).gather(1, tokens.unsqueeze(1)).squeeze(1)


def top_logprobs(logits: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The n most likely tokens of each row and their log-probabilities: (B, n), (B, n)."""
    values, ids = logits.float().log_softmax(dim=-1).topk(n, dim=-1)
    return values, ids
