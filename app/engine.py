"""The engine: the only part of the service that touches tensors and the device.

One generation step is `step(batch) -> (outputs, next_batch)`: prefill the newcomers'
prompt chunks, decode one token for every running sequence, sample, detokenize, and
check the stop conditions. Prompt chunks and /embed inputs run packed (no padding);
attention maps as a padded batch.
Everything that goes in or comes out is plain Python.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from model import (
    IncrementalDecoder,
    LoadedModel,
    SamplingParams,
    decode_attention,
    dtype_name,
    embed,
    find_stop,
    make_generator,
    prefill,
    select_tokens,
    token_logprobs,
    top_logprobs,
)
from model import decode as decode_step
from model.cpu import can_prepack, prepack_linears

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    id: str
    prompt_ids: list[int]
    max_new_tokens: int
    params: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    top_n_tokens: int = 0
    prefill_details: bool = False  # log-probabilities of the prompt tokens
    ignore_eos: bool = False


@dataclass(frozen=True)
class TokenInfo:
    id: int
    text: str
    logprob: float | None
    special: bool


@dataclass
class StepOutput:
    request_id: str
    token: TokenInfo | None = None
    top_tokens: list[TokenInfo] | None = None
    prefill: list[TokenInfo] | None = None  # with the first token, when asked for
    finish_reason: str | None = None  # "length" | "eos_token" | "stop_sequence" | "time_limit"
    generated_text: str | None = None  # with the last token
    seed: int | None = None  # with the last token, when sampling: the seed that reproduces it
    error: str | None = None


@dataclass
class Sequence:
    """One request's state inside the engine: its cache slot and what it has produced."""

    request: GenerationRequest
    slot: int
    seed: int
    generator: torch.Generator | None
    decoder: IncrementalDecoder
    cached_len: int = 0  # positions written to the KV cache
    generated: list[int] = field(default_factory=list)
    text: str = ""
    prefill_sent: bool = False
    forced_finish: str | None = None  # set by the scheduler (deadline): this step's token is the last

    @property
    def prompt(self) -> list[int]:
        return self.request.prompt_ids

    @property
    def prefilled(self) -> bool:
        return self.cached_len >= len(self.prompt)


@dataclass
class Batch:
    sequences: list[Sequence] = field(default_factory=list)
    prefill_budget: int = 1024  # prompt tokens this step may prefill

    def __len__(self) -> int:
        return len(self.sequences)


Chunk = tuple[Sequence, int, int]  # (sequence, first position, tokens)


@dataclass(frozen=True)
class AttentionResult:
    num_layers: int
    num_heads: int
    attentions: list[list[list[list[float]]]]  # [layer][head][query][key]


class Engine:
    def __init__(self, loaded: LoadedModel, device: torch.device, dtype: torch.dtype, max_batch_size: int,
                 max_total_tokens: int, prepack: bool = True) -> None:
        self.model = loaded.model.to(device=device, dtype=dtype).eval()
        self.num_parameters = self.model.num_parameters()
        self.prepacked = prepack and can_prepack(self.model)
        if self.prepacked:
            prepack_linears(self.model, batch_hint=max_batch_size)
        self.tokenizer = loaded.tokenizer
        self.model_type = loaded.model_type
        self.cfg = self.model.cfg
        self.device, self.dtype = device, dtype
        self.max_batch_size = max_batch_size
        self.max_total_tokens = max_total_tokens
        self.can_generate = self.cfg.causal and self.cfg.lm_head
        self.cache = self.model.new_cache(max_batch_size, max_total_tokens) if self.can_generate else None
        self._free_slots = list(range(max_batch_size))
        self._seed_source = torch.Generator().manual_seed(int(time.time_ns() % 2**63))

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    # ---- generation -------------------------------------------------------------------------

    def new_sequence(self, request: GenerationRequest) -> Sequence:
        """Give a request a cache slot. The caller makes sure one is free (free_slots() > 0)."""
        slot = self._free_slots.pop(0)
        params = request.params
        seed = params.seed if params.seed is not None else int(torch.randint(2**31, (1,),
                                                                             generator=self._seed_source))
        generator = make_generator(seed, self.device) if params.do_sample else None
        return Sequence(request, slot, seed, generator, IncrementalDecoder(self.tokenizer, skip_special_tokens=True))

    def free_slots(self) -> int:
        return len(self._free_slots)

    def release(self, seq: Sequence) -> None:
        self._free_slots.append(seq.slot)
        self._free_slots.sort()

    def kv_usage(self, batch: Batch) -> float:
        return sum(s.cached_len for s in batch.sequences) / (self.max_batch_size * self.max_total_tokens)

    def step(self, batch: Batch) -> tuple[list[StepOutput], Batch]:
        """Prefill newcomers (within the budget), decode the running sequences, sample one token each."""
        with torch.inference_mode():
            rows, logits = self._forward(batch)
            if not rows:
                return [], batch
            # fp32 once for sampling and log-probabilities (each would otherwise convert bf16 itself).
            all_logits = (torch.cat(logits) if len(logits) > 1 else logits[0]).float()  # (B, V)
            params = [s.request.params for s in rows]
            seen = [self._seen(s) if s.request.params.repetition_penalty != 1.0 else None for s in rows]
            tokens = select_tokens(all_logits, params, [s.generator for s in rows], seen)
            logprobs = token_logprobs(all_logits, tokens)
            n_top = max(s.request.top_n_tokens for s in rows)
            top = top_logprobs(all_logits, n_top) if n_top else None
            ids, lps = tokens.tolist(), logprobs.tolist()  # the step's one host sync
            top_lists = (top[0].tolist(), top[1].tolist()) if top is not None else None
        outputs = []
        for i, seq in enumerate(rows):
            alternatives = None
            if top_lists is not None and seq.request.top_n_tokens:
                n = seq.request.top_n_tokens
                alternatives = [self._token(t, lp) for lp, t in zip(top_lists[0][i][:n], top_lists[1][i][:n],
                                                                    strict=True)]
            outputs.append(self._advance(seq, ids[i], lps[i], alternatives))
        finished = {o.request_id for o in outputs if o.finish_reason is not None}
        remaining = [s for s in batch.sequences if s.request.id not in finished]
        for seq in batch.sequences:
            if seq.request.id in finished:
                self.release(seq)
        return outputs, Batch(self._compact(remaining), batch.prefill_budget)

    def _forward(self, batch: Batch) -> tuple[list[Sequence], list[torch.Tensor]]:
        """Run the model for this step; return the sequences that get a token and their logits."""
        assert self.cache is not None
        rows: list[Sequence] = []
        logits: list[torch.Tensor] = []
        decoding = [s for s in batch.sequences if s.prefilled]
        if decoding:
            positions = [s.cached_len for s in decoding]
            last = torch.tensor([s.generated[-1] for s in decoding], device=self.device)
            logits.append(decode_step(self.model, last, torch.tensor(positions, device=self.device), self.cache,
                                      max(positions) + 1, slots=[s.slot for s in decoding]))
            rows += decoding
        chunks: list[Chunk] = []
        budget = batch.prefill_budget
        for s in batch.sequences:
            if not s.prefilled and budget > 0:
                size = min(len(s.prompt) - s.cached_len, budget)
                chunks.append((s, s.cached_len, size))
                budget -= size
        if chunks:
            out = prefill(self.model, [s.prompt[start:start + n] for s, start, n in chunks], self.cache,
                          start=[start for _, start, _ in chunks], slots=[s.slot for s, _, _ in chunks])
            done = [i for i, (s, start, n) in enumerate(chunks) if start + n == len(s.prompt)]
            if done:
                logits.append(out[torch.tensor(done, device=self.device)])
                rows += [chunks[i][0] for i in done]
        # Only now that every forward succeeded: a failed step (e.g. out of memory) leaves the
        # sequences as they were, so a retry recomputes exactly this step.
        for s in decoding:
            s.cached_len += 1
        for s, _, n in chunks:
            s.cached_len += n
        return rows, logits

    def _seen(self, seq: Sequence) -> torch.Tensor:
        return torch.tensor(seq.prompt + seq.generated, device=self.device)

    def _token(self, token_id: int, logprob: float | None) -> TokenInfo:
        special = self.tokenizer.is_special(token_id)
        return TokenInfo(token_id, self.tokenizer.token_text(token_id), logprob, special)

    def _advance(self, seq: Sequence, token_id: int, logprob: float,
                 alternatives: list[TokenInfo] | None) -> StepOutput:
        """Append a sampled token; decide whether the sequence is finished."""
        request = seq.request
        seq.generated.append(token_id)
        special = self.tokenizer.is_special(token_id)
        piece = seq.decoder.push(token_id)
        before = len(seq.text)
        finish: str | None = None
        if token_id == self.tokenizer.eos_token_id and not request.ignore_eos:
            finish = "eos_token"
        elif len(seq.generated) >= request.max_new_tokens:
            finish = "length"
        elif seq.forced_finish is not None:
            finish = seq.forced_finish
        if finish is not None:
            piece += seq.decoder.flush()
        seq.text += piece
        if request.stop and finish != "eos_token":
            at = find_stop(seq.text, request.stop, before)
            if at is not None:
                finish = "stop_sequence"
        text = self.tokenizer.token_text(token_id) if special else piece
        out = StepOutput(request.id, TokenInfo(token_id, text, logprob, special), top_tokens=alternatives,
                         finish_reason=finish)
        if not seq.prefill_sent:
            seq.prefill_sent = True
            if request.prefill_details:
                out.prefill = self.prompt_logprobs(request.prompt_ids)
        if finish is not None:
            out.generated_text = seq.text
            out.seed = seq.seed if request.params.do_sample else None
        return out

    def prompt_logprobs(self, ids: list[int]) -> list[TokenInfo]:
        """log p(token_i | tokens_<i) for a prompt; the first token has none (TGI's prefill details)."""
        with torch.inference_mode():
            x = torch.tensor([ids], device=self.device)
            logits = self.model.logits(self.model(x).hidden)[0, :-1]
            lps = token_logprobs(logits, x[0, 1:]).tolist() if len(ids) > 1 else []
        return [self._token(ids[0], None)] + [self._token(t, lp) for t, lp in zip(ids[1:], lps, strict=True)]

    def _compact(self, seqs: list[Sequence]) -> list[Sequence]:
        """Move sequences from high slots into freed low ones, so a batch reads the cache as one slice."""
        assert self.cache is not None
        seqs = sorted(seqs, key=lambda s: s.slot)
        for seq in reversed(seqs):
            if not self._free_slots or self._free_slots[0] > seq.slot:
                break
            target = self._free_slots.pop(0)
            self.cache.move_slot(seq.slot, target, seq.cached_len)
            self.release(seq)
            seq.slot = target
        return sorted(seqs, key=lambda s: s.slot)

    # ---- embeddings and attention -------------------------------------------------------------

    def _padded(self, inputs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        T = max(len(ids) for ids in inputs)
        idx = torch.full((len(inputs), T), self.cfg.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros(len(inputs), T, dtype=torch.bool)
        for row, ids in enumerate(inputs):
            idx[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = True
        return idx.to(self.device), mask.to(self.device)

    def embed(self, inputs: list[list[int]], normalize: list[bool]) -> list[list[float]]:
        """One pooled vector per input (the model's pooling; L2-normalised where asked).

        The inputs run packed, without padding (grouped by length and padded, they computed 24%
        padding): /embed at 64 clients, MiniLM-shaped, 168 -> 195 sentences/s on 2 cores.
        """
        with torch.inference_mode():
            pooled = embed(self.model, inputs)  # (B, C)
            norms = pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            want = torch.tensor(normalize, device=self.device).unsqueeze(1)
            rows: list[list[float]] = torch.where(want, pooled / norms, pooled).tolist()
        return rows

    def attention(self, inputs: list[list[int]], layers: list[list[int]], heads: list[list[int]],
                  mean_heads: list[bool]) -> list[list[list[list[list[float]]]]]:
        """Post-softmax attention weights per input: [layer][head][query][key], selected and sliced."""
        with torch.inference_mode():
            idx, mask = self._padded(inputs)
            out = self.model(idx, key_mask=mask, need_weights=True)
            assert out.attentions is not None
            stacked = torch.stack(out.attentions, dim=1).float()  # (B, L, nh, T, T)
            results = []
            for row, ids in enumerate(inputs):
                T = len(ids)
                w = stacked[row][layers[row]][:, heads[row], :T, :T]  # (l, h, T, T)
                if mean_heads[row]:
                    w = w.mean(dim=1, keepdim=True)
                results.append(w.tolist())
            return results

    def warmup(self) -> None:
        """Run every path once so the first request doesn't pay for lazy initialisation."""
        ids = self.tokenizer.encode("Hello there, warm-up.").ids or [0]
        self.embed([ids], [True])
        self.attention([ids], [[0]], [[0]], [False])
        if self.can_generate:
            assert self.cache is not None
            if self.device.type == "cpu":
                decode_attention.warmup(self.cache.k.dtype)
            seq = self.new_sequence(GenerationRequest("warmup", ids[: self.max_total_tokens - 2], 2))
            batch = Batch([seq])
            while batch.sequences:
                _, batch = self.step(batch)
        logger.info("engine warmed up on %s (%s)", self.device, self.dtype_name)

