"""The OpenAI adapter: OpenAI requests become the service's GenerationRequests, and the engine's
outputs become OpenAI's replies and stream chunks.

Plain Python like the service (no tensors). Generation goes through Service.stream, so the queue,
admission limits, abort-on-disconnect and metrics are the native routes' own; what is OpenAI's here
is the sampling defaults, the error wording, the stop-string trimming and the reply shapes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from model import SamplingParams

from ..engine import GenerationRequest, StepOutput, TokenInfo
from ..schemas import EmbedRequest
from ..service import Generation, GenerationFailed, RequestInvalid, Service
from .errors import OpenAIError
from .protocol import (
    SEED_MAX,
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatLogprobs,
    ChatMessage,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    Delta,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    FinishReason,
    ModelCard,
    ModelList,
    SamplingFields,
    TokenLogprob,
    TopLogprob,
    Usage,
)

FINISH_REASONS: dict[str, FinishReason] = {"eos_token": "stop", "stop_sequence": "stop", "length": "length",
                                           "time_limit": "length"}
# vLLM's threshold: a temperature this small is greedy (dividing by it would overflow the logits).
GREEDY_BELOW = 1e-5
DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default max_tokens for /v1/completions
STARTED = int(time.time())

Chunk = CompletionResponse | ChatCompletionChunk


# ---- text ----------------------------------------------------------------------------------------


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """The text before the earliest stop string: OpenAI leaves the stop string out (TGI keeps it)."""
    hits = [at for at in (text.find(stop) for stop in stops) if at != -1]
    return text[: min(hits)] if hits else text


def held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of `text` could begin a stop string: not streamed until known."""
    longest = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:k]):
                longest = k
                break
    return longest


# ---- chat templates -------------------------------------------------------------------------------


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # Hugging Face's own tojson: unlike Jinja's, it does not HTML-escape (templates emit JSON for the model).
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def compile_template(source: str) -> jinja2.Template:
    """A chat template compiled as transformers' apply_chat_template does (sandboxed, same helpers)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render_chat(source: str, messages: list[dict[str, Any]], bos_token: str, eos_token: str) -> str:
    try:
        template = compile_template(source)
    except jinja2.TemplateError as exc:
        raise GenerationFailed(f"the model's chat template does not compile: {exc}") from exc
    try:
        return template.render(messages=messages, add_generation_prompt=True, bos_token=bos_token,
                               eos_token=eos_token)
    except (jinja2.TemplateError, TypeError, ValueError) as exc:
        raise RequestInvalid("messages", f"the model's chat template refused them: {exc}") from exc


def template_message(message: ChatMessage) -> dict[str, Any]:
    """A message as templates expect it: content flattened to one string, extra fields kept."""
    data = message.model_dump(exclude_none=True)
    data["content"] = message.text()
    return data


# ---- one choice, one run ---------------------------------------------------------------------------


@dataclass
class Prompt:
    ids: list[int]
    text: str


@dataclass
class ChoiceState:
    """One choice of a reply: what its generation produced, and how much of it was streamed."""

    index: int
    prompt: Prompt
    gen: Generation
    raw: str = ""  # generated text so far, stop strings not yet trimmed
    sent: int = 0  # characters of `raw` already streamed
    offset: int = 0  # text_offset of the next logprobs entry
    started: bool = False

    def advance(self, out: StepOutput, stops: tuple[str, ...], score_only: bool) -> str:
        """Take one engine output; return the text that can now be sent (held back near a stop string)."""
        self.gen.add(out)
        if out.token is not None and not out.token.special and not score_only:
            self.raw += out.token.text
        visible = cut_at_stop(self.raw, stops)
        if out.finish_reason is None:
            visible = visible[: len(visible) - held_back(visible, stops)]
        delta = visible[self.sent:]
        self.sent = max(self.sent, len(visible))
        return delta

    def text(self, stops: tuple[str, ...]) -> str:
        return cut_at_stop(self.raw, stops)

    def add_prompt_logprobs(self, lp: CompletionLogprobs) -> None:
        """Echo: the prompt tokens' entries (the first has no logprob), then generated ones follow it."""
        for t in self.gen.prefill or []:
            _append(lp, t.text, t.logprob, None if t.logprob is None else {t.text: t.logprob}, self.offset)
            self.offset += len(t.text)
        self.offset = len(self.prompt.text)

    def add_token_logprobs(self, lp: CompletionLogprobs, tokens: list[TokenInfo],
                           tops: list[list[TokenInfo]], k: int) -> None:
        # text_offset indexes the returned `text` (with echo, prompt included), so a client can slice it.
        for t, alts in zip(tokens, tops, strict=True):
            top = {a.text: a.logprob for a in alts[:k] if a.logprob is not None}
            if t.logprob is not None:
                top.setdefault(t.text, t.logprob)
            _append(lp, t.text, t.logprob, top, self.offset)
            if not t.special:
                self.offset += len(t.text)


def _append(lp: CompletionLogprobs, token: str, logprob: float | None, top: dict[str, float] | None,
            offset: int) -> None:
    lp.tokens.append(token)
    lp.token_logprobs.append(logprob)
    lp.top_logprobs.append(top)
    lp.text_offset.append(offset)


def chat_logprob(token: TokenInfo, alternatives: list[TokenInfo], k: int) -> TokenLogprob:
    top = [TopLogprob(token=a.text, logprob=a.logprob or 0.0, bytes=list(a.text.encode()))
           for a in alternatives[:k]]
    return TokenLogprob(token=token.text, logprob=token.logprob or 0.0, bytes=list(token.text.encode()),
                        top_logprobs=top)


@dataclass
class Run:
    """A /v1 generation in flight: its choices (by engine request id) and their merged outputs."""

    kind: Literal["completion", "chat"]
    id: str
    model: str
    choices: dict[str, ChoiceState]
    outputs: AsyncIterator[StepOutput]
    stops: tuple[str, ...]
    prompt_tokens: int
    top_logprobs: int | None  # None: no logprobs asked for
    echo: bool = False
    score_only: bool = False  # max_tokens 0: score the prompt (with echo), generate nothing
    include_usage: bool = False
    created: int = field(default_factory=lambda: int(time.time()))

    def ordered(self) -> list[ChoiceState]:
        return sorted(self.choices.values(), key=lambda c: c.index)

    def usage(self) -> Usage:
        generated = 0 if self.score_only else sum(len(c.gen.tokens) for c in self.choices.values())
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=generated,
                     total_tokens=self.prompt_tokens + generated)


async def merge(streams: list[AsyncIterator[StepOutput]], ids: list[str],
                abort: Callable[[str], None]) -> AsyncIterator[StepOutput]:
    """The outputs of several generations as they come (choices interleave); leaving early aborts
    every generation that has not finished, including any whose stream never started."""
    queue: asyncio.Queue[StepOutput | GenerationFailed | None] = asyncio.Queue()

    async def pump(stream: AsyncIterator[StepOutput]) -> None:
        try:
            async for out in stream:
                queue.put_nowait(out)
        except GenerationFailed as exc:
            queue.put_nowait(exc)
            return
        queue.put_nowait(None)

    tasks = [asyncio.ensure_future(pump(s)) for s in streams]
    finished: set[str] = set()
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
                continue
            if isinstance(item, GenerationFailed):
                raise item
            if item.finish_reason is not None:
                finished.add(item.request_id)
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for request_id in ids:
            if request_id not in finished:
                abort(request_id)


# ---- the adapter ------------------------------------------------------------------------------------


class OpenAIServing:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.settings = service.settings
        self.tokenizer = service.tokenizer

    # ---- models ----

    def models(self) -> ModelList:
        return ModelList(data=[self.model_card()])

    def model_card(self, name: str | None = None) -> ModelCard:
        served = self.service.model_id
        if name is not None and name != served:
            raise OpenAIError(404, f"The model `{name}` does not exist; this server serves `{served}`.",
                              param="model", code="model_not_found")
        return ModelCard(id=served, created=STARTED, max_model_len=self.service.max_total_tokens)

    # ---- completions ----

    def start_completion(self, body: CompletionRequest) -> Run:
        """Validate, tokenize and queue every choice (a full queue raises before anything is sent)."""
        n, echo = body.choices(), bool(body.echo)
        self._refuse_unsupported(body, {"best_of": body.best_of not in (None, n),
                                        "suffix": bool(body.suffix)})
        self._require_generation("prompt")
        prompts = self._completion_prompts(body.prompt)
        self._check_choices(len(prompts) * n)
        max_new = DEFAULT_COMPLETION_TOKENS if body.max_tokens is None else body.max_tokens
        top_n = self._top_n(body.logprobs, "logprobs")
        stops = self._stops(body)
        for i, prompt in enumerate(prompts):
            where = "prompt" if len(prompts) == 1 else f"prompt.{i}"
            self._check_lengths(len(prompt.ids), max(max_new, 1), where, "max_tokens")
        run_id = f"cmpl-{uuid.uuid4().hex}"
        planned: list[tuple[GenerationRequest, Prompt]] = []
        for i, prompt in enumerate(prompts):
            for j in range(n):
                index = i * n + j
                planned.append((GenerationRequest(
                    id=f"{run_id}-{index}", prompt_ids=prompt.ids, max_new_tokens=max(max_new, 1),
                    params=self._sampling(body, index), stop=stops, top_n_tokens=top_n,
                    prefill_details=echo and body.logprobs is not None, ignore_eos=bool(body.ignore_eos)),
                    prompt))
        prompt_tokens = sum(len(p.ids) for p in prompts)
        return self._run("completion", run_id, planned, stops, prompt_tokens, body.logprobs, echo=echo,
                         score_only=max_new == 0, include_usage=body.include_usage())

    def _completion_prompts(self, prompt: str | list[str] | list[int] | list[list[int]]) -> list[Prompt]:
        if isinstance(prompt, str):
            return [self._text_prompt(prompt, "prompt")]
        if not prompt:
            raise RequestInvalid("prompt", "must not be an empty list")
        items: list[Any] = list(prompt)
        if all(isinstance(x, int) for x in items):
            return [self._ids_prompt(items, "prompt")]
        return [self._text_prompt(p, f"prompt.{i}") if isinstance(p, str)
                else self._ids_prompt(p, f"prompt.{i}") for i, p in enumerate(items)]

    def _text_prompt(self, text: str, where: str) -> Prompt:
        if not text.strip():
            raise RequestInvalid(where, "must not be empty")
        ids = self.tokenizer.encode(text).ids
        if not ids:
            raise RequestInvalid(where, "encodes to no tokens")
        return Prompt(ids, text)

    def _ids_prompt(self, ids: list[int], where: str) -> Prompt:
        vocab = self.service.engine.cfg.vocab_size
        if not ids:
            raise RequestInvalid(where, "must not be empty")
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise RequestInvalid(where, f"token id {bad[0]} is out of range: the vocabulary has {vocab}")
        return Prompt(list(ids), self.tokenizer.decode(ids, skip_special_tokens=False))

    # ---- chat ----

    def start_chat(self, body: ChatCompletionRequest) -> Run:
        plain_text = body.response_format in (None, {"type": "text"})
        self._refuse_unsupported(body, {"tools": bool(body.tools), "response_format": not plain_text})
        self._require_generation("messages")
        if body.top_logprobs and not body.logprobs:
            raise RequestInvalid("top_logprobs", "needs `logprobs: true`")
        top_n = self._top_n(body.top_logprobs if body.logprobs else None, "top_logprobs")
        prompt = self._chat_prompt(body.messages)
        self._check_choices(body.choices())
        max_new = body.max_completion_tokens or body.max_tokens or min(
            self.settings.default_max_new_tokens, max(1, self.service.max_total_tokens - len(prompt.ids)))
        field_name = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        self._check_lengths(len(prompt.ids), max_new, "messages", field_name)
        stops = self._stops(body)
        run_id = f"chatcmpl-{uuid.uuid4().hex}"
        planned = [(GenerationRequest(id=f"{run_id}-{index}", prompt_ids=prompt.ids, max_new_tokens=max_new,
                                      params=self._sampling(body, index), stop=stops, top_n_tokens=top_n,
                                      ignore_eos=bool(body.ignore_eos)), prompt)
                   for index in range(body.choices())]
        top_logprobs = (body.top_logprobs or 0) if body.logprobs else None
        return self._run("chat", run_id, planned, stops, len(prompt.ids), top_logprobs,
                         include_usage=body.include_usage())

    def _chat_prompt(self, messages: list[ChatMessage]) -> Prompt:
        template = self.tokenizer.chat_template
        if template is None:
            raise OpenAIError(
                400, f"model `{self.service.model_id}` has no chat template (its tokenizer_config.json has "
                     "no `chat_template`), so /v1/chat/completions cannot format messages for it; use "
                     "/v1/completions with a prompt", param="messages", code="chat_template_missing")
        text = render_chat(template, [template_message(m) for m in messages], self._special(
            self.tokenizer.bos_token_id), self._special(self.tokenizer.eos_token_id))
        # The template writes the special tokens itself, so none are added (as transformers does).
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        if not ids:
            raise RequestInvalid("messages", "the chat template rendered them as an empty prompt")
        return Prompt(ids, text)

    def _special(self, token_id: int | None) -> str:
        return "" if token_id is None else self.tokenizer.token_text(token_id)

    # ---- shared checks ----

    def _refuse_unsupported(self, body: SamplingFields, more: dict[str, bool]) -> None:
        unsupported = {"presence_penalty": body.presence_penalty not in (None, 0.0),
                       "frequency_penalty": body.frequency_penalty not in (None, 0.0),
                       "logit_bias": bool(body.logit_bias), **more}
        for name, is_set in unsupported.items():
            if is_set:
                raise RequestInvalid(name, "is not supported by this server; leave it unset")

    def _require_generation(self, where: str) -> None:
        if not self.service.engine.can_generate:
            raise RequestInvalid(where, f"model `{self.service.model_id}` is an encoder and cannot generate; "
                                        "use /v1/embeddings")

    def _check_choices(self, count: int) -> None:
        limit = self.settings.max_client_batch_size
        if count > limit:
            raise RequestInvalid("n", f"asks for {count} choices (prompts x n); at most {limit} per request")

    def _top_n(self, k: int | None, where: str) -> int:
        limit = self.settings.max_top_n_tokens
        if k is not None and k > limit:
            raise RequestInvalid(where, f"must be <= {limit} on this server, got {k}")
        return k or 0

    def _stops(self, body: SamplingFields) -> tuple[str, ...]:
        stops = body.stop_list()
        if len(stops) > self.settings.max_stop_sequences:
            raise RequestInvalid("stop", f"at most {self.settings.max_stop_sequences} stop sequences, "
                                         f"got {len(stops)}")
        if any(len(s) > self.settings.max_stop_length for s in stops):
            raise RequestInvalid("stop", f"each stop sequence must be at most "
                                         f"{self.settings.max_stop_length} characters")
        return tuple(stops)

    def _check_lengths(self, prompt_tokens: int, max_new: int, prompt_field: str, max_field: str) -> None:
        total, max_input = self.service.max_total_tokens, self.service.max_input_tokens
        if prompt_tokens > max_input:
            raise RequestInvalid(prompt_field, f"has {prompt_tokens} tokens; this model accepts at most "
                                               f"{max_input} prompt tokens")
        if prompt_tokens + max_new > total:
            raise RequestInvalid(max_field, f"this model's maximum context length is {total} tokens, but "
                                            f"{prompt_tokens + max_new} were requested ({prompt_tokens} in "
                                            f"the prompt, {max_new} for the completion); reduce one of them")

    @staticmethod
    def _sampling(body: SamplingFields, index: int) -> SamplingParams:
        # Each choice gets its own seed (seed + index), so n > 1 samples differ yet stay reproducible.
        seed = None if body.seed is None else (body.seed + index) % SEED_MAX
        penalty = body.repetition_penalty or 1.0
        temperature = 1.0 if body.temperature is None else body.temperature  # OpenAI's default samples
        if temperature < GREEDY_BELOW:
            return SamplingParams(do_sample=False, repetition_penalty=penalty, seed=seed)
        return SamplingParams(do_sample=True, temperature=temperature, top_k=max(body.top_k or 0, 0),
                              top_p=body.top_p or 1.0, repetition_penalty=penalty, seed=seed)

    # ---- running ----

    def _run(self, kind: Literal["completion", "chat"], run_id: str,
             planned: list[tuple[GenerationRequest, Prompt]], stops: tuple[str, ...], prompt_tokens: int,
             top_logprobs: int | None, *, echo: bool = False, score_only: bool = False,
             include_usage: bool = False) -> Run:
        requests = [request for request, _ in planned]
        choices = {request.id: ChoiceState(index, prompt, Generation(request, len(prompt.ids), None))
                   for index, (request, prompt) in enumerate(planned)}
        return Run(kind, run_id, self.service.model_id, choices, self._submit(requests), stops, prompt_tokens,
                   top_logprobs, echo=echo, score_only=score_only, include_usage=include_usage)

    def _submit(self, requests: list[GenerationRequest]) -> AsyncIterator[StepOutput]:
        """Queue all the choices or none: if the queue fills midway, those already queued are aborted."""
        streams: list[AsyncIterator[StepOutput]] = []
        try:
            for request in requests:
                streams.append(self.service.stream(request))
        except Exception:
            for request in requests[: len(streams)]:
                self.service.scheduler.abort(request.id)
            raise
        return merge(streams, [r.id for r in requests], self.service.scheduler.abort)

    async def drain(self, run: Run) -> None:
        """Run every choice to its end (the non-streamed reply)."""
        async for out in run.outputs:
            run.choices[out.request_id].advance(out, run.stops, run.score_only)

    # ---- whole replies ----

    def completion_response(self, run: Run) -> CompletionResponse:
        choices = []
        for c in run.ordered():
            logprobs = None
            if run.top_logprobs is not None:
                logprobs = CompletionLogprobs()
                if run.echo:
                    c.add_prompt_logprobs(logprobs)
                if not run.score_only:
                    c.add_token_logprobs(logprobs, c.gen.tokens, c.gen.top_tokens, run.top_logprobs)
            text = (c.prompt.text if run.echo else "") + c.text(run.stops)
            choices.append(CompletionChoice(index=c.index, text=text, logprobs=logprobs,
                                            finish_reason=self._finish(c.gen.finish_reason)))
        return CompletionResponse(id=run.id, created=run.created, model=run.model, choices=choices,
                                  usage=run.usage())

    def chat_response(self, run: Run) -> ChatCompletionResponse:
        choices = []
        for c in run.ordered():
            logprobs = None
            if run.top_logprobs is not None:
                pairs = zip(c.gen.tokens, c.gen.top_tokens, strict=True)
                logprobs = ChatLogprobs(content=[chat_logprob(t, alts, run.top_logprobs)
                                                 for t, alts in pairs])
            choices.append(ChatChoice(index=c.index, message=AssistantMessage(content=c.text(run.stops)),
                                      logprobs=logprobs, finish_reason=self._finish(c.gen.finish_reason)))
        return ChatCompletionResponse(id=run.id, created=run.created, model=run.model, choices=choices,
                                      usage=run.usage())

    @staticmethod
    def _finish(reason: str | None) -> FinishReason | None:
        return FINISH_REASONS.get(reason) if reason is not None else None

    # ---- stream chunks ----

    def opening_chunks(self, run: Run) -> list[Chunk]:
        """Chat streams open with the assistant's role, one chunk per choice, as OpenAI's do."""
        if run.kind != "chat":
            return []
        return [ChatCompletionChunk(id=run.id, created=run.created, model=run.model, choices=[
            ChatChunkChoice(index=c.index, delta=Delta(role="assistant", content=""))])
            for c in run.ordered()]

    def chunks(self, run: Run, out: StepOutput) -> list[Chunk]:
        """The chunk (or none, while text is held back) that one engine output makes."""
        choice = run.choices[out.request_id]
        delta = choice.advance(out, run.stops, run.score_only)
        first, choice.started = not choice.started, True
        finish = self._finish(out.finish_reason)
        if run.kind == "chat":
            chat_lp = None
            if run.top_logprobs is not None and out.token is not None:
                entry = chat_logprob(out.token, out.top_tokens or [], run.top_logprobs)
                chat_lp = ChatLogprobs(content=[entry])
            if not delta and finish is None and chat_lp is None:
                return []
            return [ChatCompletionChunk(id=run.id, created=run.created, model=run.model, choices=[
                ChatChunkChoice(index=choice.index, delta=Delta(content=delta), logprobs=chat_lp,
                                finish_reason=finish)])]
        text = (choice.prompt.text if first and run.echo else "") + delta
        logprobs = self._chunk_logprobs(run, choice, out, first)
        if not text and finish is None and (logprobs is None or not logprobs.tokens):
            return []
        return [CompletionResponse(id=run.id, created=run.created, model=run.model, choices=[
            CompletionChoice(index=choice.index, text=text, logprobs=logprobs, finish_reason=finish)])]

    @staticmethod
    def _chunk_logprobs(run: Run, choice: ChoiceState, out: StepOutput,
                        first: bool) -> CompletionLogprobs | None:
        if run.top_logprobs is None:
            return None
        logprobs = CompletionLogprobs()
        if first and run.echo:
            choice.add_prompt_logprobs(logprobs)
        if out.token is not None and not run.score_only:
            choice.add_token_logprobs(logprobs, [out.token], [out.top_tokens or []], run.top_logprobs)
        return logprobs

    def closing_chunks(self, run: Run) -> list[Chunk]:
        """With stream_options.include_usage: a last chunk with no choices and the usage."""
        if not run.include_usage:
            return []
        if run.kind == "chat":
            return [ChatCompletionChunk(id=run.id, created=run.created, model=run.model, choices=[],
                                        usage=run.usage())]
        return [CompletionResponse(id=run.id, created=run.created, model=run.model, choices=[],
                                   usage=run.usage())]

    # ---- embeddings ----

    async def embeddings(self, body: EmbeddingRequest) -> EmbeddingResponse:
        texts = [body.input] if isinstance(body.input, str) else body.input
        size = self.service.engine.cfg.d_model
        if body.dimensions is not None and body.dimensions > size:
            raise RequestInvalid("dimensions", f"must be <= {size}, the model's embedding size; "
                                               f"got {body.dimensions}")
        counts = self._embedding_token_counts(texts, isinstance(body.input, str))
        vectors = await self.service.embed(EmbedRequest(inputs=texts, normalize=True))
        data = [Embedding(index=i, embedding=encode_vector(shorten(v, body.dimensions), body.encoding_format))
                for i, v in enumerate(vectors)]
        return EmbeddingResponse(data=data, model=self.service.model_id,
                                 usage=EmbeddingUsage(prompt_tokens=sum(counts), total_tokens=sum(counts)))

    def _embedding_token_counts(self, texts: list[str], single: bool) -> list[int]:
        """Check the inputs with OpenAI's field names (the service would name TEI's) and count tokens."""
        if not texts:
            raise RequestInvalid("input", "must not be an empty list")
        if len(texts) > self.settings.max_client_batch_size:
            raise RequestInvalid("input", f"at most {self.settings.max_client_batch_size} inputs per call, "
                                          f"got {len(texts)}")
        limit = self.service.engine.cfg.max_seq_len
        counts = []
        for i, text in enumerate(texts):
            where = "input" if single else f"input.{i}"
            if not text.strip():
                raise RequestInvalid(where, "must not be empty")
            count = len(self.tokenizer.encode(text).ids)
            if count > limit:
                raise RequestInvalid(where, f"has {count} tokens; this model embeds at most {limit}")
            counts.append(count)
        return counts


def shorten(vector: list[float], dimensions: int | None) -> list[float]:
    """Keep the first `dimensions` values and re-normalise (Matryoshka-style, as OpenAI's `dimensions`)."""
    if dimensions is None or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head))
    return [x / norm for x in head] if norm > 0 else head


def encode_vector(vector: list[float], encoding: Literal["float", "base64"]) -> list[float] | str:
    """base64 is OpenAI's: the vector's little-endian float32 bytes."""
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
