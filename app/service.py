"""The service: validates requests against the model's limits, queues them, and turns the
engine's outputs into response values. Async, plain Python; no tensors here.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from model import SamplingParams

from .config import Settings
from .engine import Engine, GenerationRequest, StepOutput, TokenInfo
from .metrics import Metrics
from .scheduler import Job, Scheduler
from .schemas import (
    AttentionRequest,
    AttentionResponse,
    Details,
    EmbedRequest,
    GenerateParameters,
    GenerateRequest,
    GenerateResponse,
    PrefillToken,
    StreamDetails,
    StreamResponse,
    Token,
    TokenSpan,
)


class RequestInvalid(Exception):
    """A request the model cannot serve as asked: 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"`{field}`: {message}" if field else message)
        self.field = field


class GenerationFailed(Exception):
    """The engine failed this request (error_type "generation")."""


@dataclass
class Generation:
    """A generation in flight: what the service accumulates from its stream of StepOutputs."""

    request: GenerationRequest
    input_length: int
    seed: int | None
    tokens: list[TokenInfo] = field(default_factory=list)
    top_tokens: list[list[TokenInfo]] = field(default_factory=list)
    prefill: list[TokenInfo] | None = None
    generated_text: str = ""
    finish_reason: str | None = None

    def add(self, out: StepOutput) -> None:
        if out.token is not None:
            self.tokens.append(out.token)
            self.top_tokens.append(out.top_tokens or [])
        if out.prefill is not None:
            self.prefill = out.prefill
        if out.finish_reason is not None:
            self.finish_reason = out.finish_reason
            self.generated_text = out.generated_text or ""
            self.seed = out.seed


class Mailbox:
    """Hands outputs from the engine thread to the event loop: one wake-up for all that are posted
    together (a step's outputs for every stream), not one per token."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._posts: list[tuple[asyncio.Queue[StepOutput], StepOutput]] = []

    def post(self, queue: asyncio.Queue[StepOutput], out: StepOutput) -> None:
        with self._lock:
            self._posts.append((queue, out))
            if len(self._posts) > 1:
                return  # a flush is already on its way
        self.loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            posts, self._posts = self._posts, []
        for queue, out in posts:
            queue.put_nowait(out)


class Service:
    def __init__(self, engine: Engine, scheduler: Scheduler, settings: Settings, metrics: Metrics,
                 model_id: str) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.settings = settings
        self.metrics = metrics
        self._mailbox: Mailbox | None = None
        self.model_id = model_id
        self.tokenizer = engine.tokenizer
        context = engine.cfg.max_seq_len
        self.max_total_tokens = min(settings.max_total_tokens or context, context)
        self.max_input_tokens = min(settings.max_input_tokens or self.max_total_tokens - 1, self.max_total_tokens - 1)
        self._ids = itertools.count()

    # ---- generation ---------------------------------------------------------------------------

    def prepare(self, body: GenerateRequest, prefix: str = "parameters") -> tuple[GenerationRequest, int]:
        """Validate and tokenize a TGI-style request; return the engine request and the prompt length."""
        p = body.parameters
        self._refuse_unsupported(p, prefix)
        if not self.engine.can_generate:
            raise RequestInvalid("inputs", f"model {self.model_id} is an encoder and cannot generate; "
                                           "use /embed or /attention")
        ids = self._prompt_ids(body.inputs, "inputs")
        if p.truncate is not None:
            ids = ids[-p.truncate:]
        max_new = p.max_new_tokens if p.max_new_tokens is not None else min(
            self.settings.default_max_new_tokens, max(1, self.max_total_tokens - len(ids)))
        self._check_lengths(len(ids), max_new, f"{prefix}.max_new_tokens")
        self._check_stops(p.stop, f"{prefix}.stop")
        top_n = p.top_n_tokens or 0
        if top_n > self.settings.max_top_n_tokens:
            raise RequestInvalid(f"{prefix}.top_n_tokens",
                                 f"must be <= {self.settings.max_top_n_tokens}, got {top_n}")
        return GenerationRequest(
            id=f"gen-{next(self._ids)}-{uuid.uuid4().hex[:8]}", prompt_ids=ids, max_new_tokens=max_new,
            params=self.sampling_params(p), stop=tuple(p.stop), top_n_tokens=top_n,
            prefill_details=p.decoder_input_details, ignore_eos=p.ignore_eos,
        ), len(ids)

    @staticmethod
    def sampling_params(p: GenerateParameters) -> SamplingParams:
        # As TGI: setting any warper (temperature, top_k, top_p) turns sampling on.
        warped = (p.temperature not in (None, 1.0)) or p.top_k is not None or (p.top_p not in (None, 1.0))
        return SamplingParams(do_sample=p.do_sample or warped, temperature=p.temperature or 1.0,
                              top_k=p.top_k or 0, top_p=p.top_p or 1.0,
                              repetition_penalty=p.repetition_penalty or 1.0, seed=p.seed)

    def _refuse_unsupported(self, p: GenerateParameters, prefix: str) -> None:
        unsupported = {
            "typical_p": p.typical_p not in (None, 1.0), "best_of": p.best_of not in (None, 1),
            "watermark": p.watermark, "grammar": p.grammar is not None, "adapter_id": p.adapter_id is not None,
            "frequency_penalty": p.frequency_penalty not in (None, 0.0),
        }
        for name, is_set in unsupported.items():
            if is_set:
                raise RequestInvalid(f"{prefix}.{name}", "is not supported by this server; leave it unset")

    def _prompt_ids(self, text: str, field_name: str) -> list[int]:
        if not text.strip():
            raise RequestInvalid(field_name, "must not be empty")
        return self.tokenizer.encode(text).ids

    def _check_lengths(self, prompt_tokens: int, max_new: int, max_new_field: str) -> None:
        if prompt_tokens == 0:
            raise RequestInvalid("inputs", "encodes to no tokens")
        if prompt_tokens > self.max_input_tokens:
            raise RequestInvalid("inputs", f"has {prompt_tokens} tokens; the limit is {self.max_input_tokens} "
                                           "(set `parameters.truncate` to keep the last N)")
        if prompt_tokens + max_new > self.max_total_tokens:
            raise RequestInvalid(max_new_field, f"inputs tokens + max_new_tokens must be <= "
                                                f"{self.max_total_tokens}: given {prompt_tokens} inputs tokens "
                                                f"and {max_new} max_new_tokens")

    def _check_stops(self, stops: list[str], field_name: str) -> None:
        if len(stops) > self.settings.max_stop_sequences:
            raise RequestInvalid(field_name, f"at most {self.settings.max_stop_sequences} stop sequences, "
                                             f"got {len(stops)}")
        for stop in stops:
            if len(stop) > self.settings.max_stop_length:
                raise RequestInvalid(field_name, f"each stop sequence must be at most "
                                                 f"{self.settings.max_stop_length} characters")

    def stream(self, request: GenerationRequest) -> AsyncIterator[StepOutput]:
        """Queue a generation now (a full queue raises Overloaded before any byte is sent) and
        return an iterator over its outputs; leaving the iterator early (client gone) aborts it."""
        loop = asyncio.get_running_loop()
        if self._mailbox is None or self._mailbox.loop is not loop:
            self._mailbox = Mailbox(loop)
        mailbox = self._mailbox
        queue: asyncio.Queue[StepOutput] = asyncio.Queue()

        def sink(out: StepOutput) -> None:
            mailbox.post(queue, out)

        deadline = None
        if self.settings.request_timeout_s is not None:
            deadline = time.monotonic() + self.settings.request_timeout_s
        self.scheduler.submit(request, sink, deadline)
        self.metrics.prompt_tokens.inc(len(request.prompt_ids))
        return self._outputs(request, queue)

    async def _outputs(self, request: GenerationRequest, queue: asyncio.Queue[StepOutput]) -> AsyncIterator[StepOutput]:
        finished = False
        try:
            while True:
                out = await queue.get()
                if out.error is not None:
                    finished = True
                    raise GenerationFailed(out.error)
                finished = out.finish_reason is not None
                yield out
                if finished:
                    return
        finally:
            if not finished:
                self.scheduler.abort(request.id)

    async def collect(self, request: GenerationRequest, outputs: AsyncIterator[StepOutput],
                      input_length: int) -> Generation:
        """Gather a whole generation from its outputs."""
        gen = Generation(request, input_length, None)
        async for out in outputs:
            gen.add(out)
        return gen

    # ---- TGI shapes ----------------------------------------------------------------------------

    @staticmethod
    def tgi_token(t: TokenInfo) -> Token:
        return Token(id=t.id, text=t.text, logprob=t.logprob, special=t.special)

    def tgi_response(self, gen: Generation, body: GenerateRequest) -> GenerateResponse:
        text = gen.generated_text
        if body.parameters.return_full_text:
            text = body.inputs + text
        details = None
        if body.parameters.details:
            assert gen.finish_reason is not None
            details = Details(
                finish_reason=gen.finish_reason,  # type: ignore[arg-type]
                generated_tokens=len(gen.tokens), seed=gen.seed,
                prefill=[PrefillToken(id=t.id, text=t.text, logprob=t.logprob) for t in gen.prefill or []],
                tokens=[self.tgi_token(t) for t in gen.tokens],
                top_tokens=[[self.tgi_token(t) for t in alts] for alts in gen.top_tokens]
                if gen.request.top_n_tokens else [],
            )
        return GenerateResponse(generated_text=text, details=details)

    def tgi_stream_event(self, out: StepOutput, index: int, input_length: int,
                         body: GenerateRequest) -> StreamResponse:
        assert out.token is not None
        event = StreamResponse(index=index, token=self.tgi_token(out.token),
                               top_tokens=[self.tgi_token(t) for t in out.top_tokens] if out.top_tokens else None)
        if out.finish_reason is not None:
            text = out.generated_text or ""
            event.generated_text = (body.inputs + text) if body.parameters.return_full_text else text
            event.details = StreamDetails(finish_reason=out.finish_reason,  # type: ignore[arg-type]
                                          generated_tokens=index, seed=out.seed,
                                          input_length=input_length)
        return event

    # ---- embeddings, attention, tokens ---------------------------------------------------------

    async def embed(self, body: EmbedRequest) -> list[list[float]]:
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        if not texts:
            raise RequestInvalid("inputs", "must not be an empty list")
        if len(texts) > self.settings.max_client_batch_size:
            raise RequestInvalid("inputs", f"at most {self.settings.max_client_batch_size} inputs per call, "
                                           f"got {len(texts)}")
        limit = self.engine.cfg.max_seq_len
        inputs = []
        for i, text in enumerate(texts):
            where = "inputs" if isinstance(body.inputs, str) else f"inputs[{i}]"
            ids = self._prompt_ids(text, where)
            if len(ids) > limit:
                if not body.truncate:
                    raise RequestInvalid(where, f"has {len(ids)} tokens; the limit is {limit} "
                                                "(set `truncate` to cut it)")
                ids = ids[-limit:] if body.truncation_direction.lower() == "left" else ids[:limit]
            inputs.append(ids)
        normalize = body.normalize or self.engine.cfg.normalize_embeddings
        result: list[list[float]] = await self._run_job(Job("embed", inputs, {"normalize": normalize}))
        return result

    async def attention(self, body: AttentionRequest) -> AttentionResponse:
        cfg = self.engine.cfg
        enc = self.tokenizer.encode(body.inputs)
        if not body.inputs.strip() or not enc.ids:
            raise RequestInvalid("inputs", "must not be empty")
        cap = min(self.settings.attention_max_tokens, cfg.max_seq_len)
        if len(enc.ids) > cap:
            raise RequestInvalid("inputs", f"has {len(enc.ids)} tokens; /attention is capped at {cap} tokens "
                                           "(the reply grows as layers x heads x tokens^2)")
        layers = self._indices(body.layers, cfg.n_layers, "layers")
        heads = self._indices(body.heads, cfg.n_heads, "heads")
        options = {"layers": layers, "heads": heads, "mean_heads": body.aggregate == "mean_heads"}
        weights = await self._run_job(Job("attention", [enc.ids], options))
        return AttentionResponse(
            tokens=self.spans(body.inputs, add_special_tokens=True), num_layers=cfg.n_layers,
            num_heads=cfg.n_heads, causal=cfg.causal, layers=layers,
            heads=heads, aggregate=body.aggregate, attentions=weights[0])

    @staticmethod
    def _indices(chosen: list[int] | None, count: int, name: str) -> list[int]:
        if chosen is None:
            return list(range(count))
        if not chosen:
            raise RequestInvalid(name, "must not be empty (omit it for all)")
        for i in chosen:
            if not 0 <= i < count:
                raise RequestInvalid(name, f"index {i} is out of range: the model has {count} {name}")
        if len(set(chosen)) != len(chosen):
            raise RequestInvalid(name, "indices must be unique")
        return list(chosen)

    def spans(self, text: str, add_special_tokens: bool = True) -> list[TokenSpan]:
        enc = self.tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return [TokenSpan(id=i, text=text[a:b] if b > a else self.tokenizer.token_text(i), start=a, stop=b)
                for i, (a, b) in zip(enc.ids, enc.offsets, strict=True)]

    async def _run_job(self, job: Job) -> list[Any]:
        self.scheduler.submit_job(job)
        self.metrics.prompt_tokens.inc(job.tokens)
        try:
            result: list[Any] = await asyncio.wrap_future(job.future)
        except Exception as exc:
            raise GenerationFailed(f"{job.kind} failed: {exc}") from exc
        return result
