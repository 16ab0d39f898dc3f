"""The OpenAI-compatible routes, driven by the real `openai` SDK against a live server."""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from app.main import create_app
from app.scheduler import Overloaded

from .conftest import LiveServer, build_tiny_model, make_settings

# A template in the style of Hugging Face's (bos/eos tokens, raise_exception, block tags on their own
# lines that trim_blocks and lstrip_blocks must swallow), so a Jinja setup unlike transformers' shows.
CHAT_TEMPLATE = """{{ bos_token }}
{%- for message in messages %}
    {% if message['role'] not in ['system', 'user', 'assistant'] %}
        {{ raise_exception('Unknown role: ' + message['role']) }}
    {% endif %}
<|{{ message['role'] }}|>
{{ message['content'] }}{{ eos_token }}
{% endfor %}
{% if add_generation_prompt %}
<|assistant|>
{% endif %}"""

PROMPT = "Beautiful is better than"


def client_for(server: LiveServer, api_key: str = "x") -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=api_key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def oai(live: LiveServer) -> OpenAI:
    return client_for(live)


@pytest.fixture(scope="module")
def model_id(live: LiveServer) -> str:
    served: str = live.app.state.attnserve.model_id
    return served


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_model(tmp_path_factory.mktemp("chat"), seed=1)
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": CHAT_TEMPLATE, "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}))
    return folder


@pytest.fixture(scope="module")
def chat_live(chat_dir: Path) -> Iterator[LiveServer]:
    with LiveServer(create_app(make_settings(chat_dir))) as server:
        yield server


# ---- models -----------------------------------------------------------------------------------------


def test_models_listing(oai: OpenAI, model_id: str) -> None:
    models = oai.models.list()
    assert [m.id for m in models.data] == [model_id]
    assert models.data[0].object == "model" and models.data[0].owned_by == "attnserve"
    assert oai.models.retrieve(model_id).id == model_id
    with pytest.raises(openai.NotFoundError) as err:
        oai.models.retrieve("gpt-4o")
    assert err.value.code == "model_not_found" and "gpt-4o" in err.value.message


# ---- completions ------------------------------------------------------------------------------------


def test_completion_shape(oai: OpenAI, model_id: str) -> None:
    # Any model name is accepted (as TGI does), so code written for another server only changes its URL.
    c = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt=PROMPT, max_tokens=6, temperature=0)
    assert c.id.startswith("cmpl-") and c.object == "text_completion" and c.model == model_id
    assert abs(c.created - time.time()) < 60
    assert len(c.choices) == 1 and c.choices[0].index == 0
    assert c.choices[0].finish_reason in ("stop", "length")
    assert c.usage is not None and c.usage.completion_tokens <= 6
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens


def test_greedy_completion_equals_native_generate(oai: OpenAI, live: LiveServer) -> None:
    c = oai.completions.create(model="m", prompt=PROMPT, max_tokens=10, temperature=0,
                               extra_body={"ignore_eos": True})
    native = httpx.post(live.url + "/generate", json={"inputs": PROMPT, "parameters": {
        "max_new_tokens": 10, "ignore_eos": True}}, timeout=60).json()
    assert c.choices[0].text == native["generated_text"]
    assert c.choices[0].finish_reason == "length" and c.usage is not None and c.usage.completion_tokens == 10


def test_max_tokens_defaults_to_16(oai: OpenAI) -> None:
    c = oai.completions.create(model="m", prompt=PROMPT, temperature=0, extra_body={"ignore_eos": True})
    assert c.usage is not None and c.usage.completion_tokens == 16


def test_streamed_text_equals_whole_text_for_the_same_seed(oai: OpenAI) -> None:
    args: dict[str, Any] = {"model": "m", "prompt": "Although never", "max_tokens": 20, "temperature": 1.2,
                            "seed": 1234}
    whole = oai.completions.create(**args)
    again = oai.completions.create(**args)
    assert again.choices[0].text == whole.choices[0].text  # the seed reproduces the sample
    chunks = list(oai.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].id.startswith("cmpl-")
    text = "".join(ch.text for c in chunks for ch in c.choices)
    assert text == whole.choices[0].text
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None  # include_usage: a final chunk with only usage
    assert whole.usage is not None and last.usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(oai: OpenAI) -> None:
    chunks = list(oai.completions.create(model="m", prompt=PROMPT, max_tokens=3, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)


def test_n_choices(oai: OpenAI) -> None:
    greedy = oai.completions.create(model="m", prompt=PROMPT, max_tokens=8, temperature=0, n=2,
                                    extra_body={"ignore_eos": True})
    assert [c.index for c in greedy.choices] == [0, 1]
    assert greedy.choices[0].text == greedy.choices[1].text  # temperature 0: identical
    single = oai.completions.create(model="m", prompt=PROMPT, max_tokens=8, temperature=0)
    assert greedy.usage is not None and single.usage is not None
    assert greedy.usage.prompt_tokens == single.usage.prompt_tokens  # the prompt counts once, as OpenAI's
    assert greedy.usage.completion_tokens == 16

    args: dict[str, Any] = {"model": "m", "prompt": PROMPT, "max_tokens": 12, "temperature": 1.5, "n": 3,
                            "seed": 7, "extra_body": {"ignore_eos": True}}
    sampled = oai.completions.create(**args)
    texts = [c.text for c in sampled.choices]
    for i, text in enumerate(texts):  # each choice has its own seed, seed + index: reproducible one by one
        alone = oai.completions.create(**{**args, "n": 1, "seed": 7 + i})
        assert alone.choices[0].text == text
    streamed = {i: "" for i in range(3)}
    for chunk in oai.completions.create(**args, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.text
    assert [streamed[i] for i in range(3)] == texts


def test_list_of_prompts_with_n(oai: OpenAI) -> None:
    prompts = [PROMPT, "Flat is better than"]
    both = oai.completions.create(model="m", prompt=prompts, max_tokens=5, temperature=0, n=2)
    assert [c.index for c in both.choices] == [0, 1, 2, 3]
    for i, prompt in enumerate(prompts):
        alone = oai.completions.create(model="m", prompt=prompt, max_tokens=5, temperature=0)
        assert both.choices[2 * i].text == both.choices[2 * i + 1].text == alone.choices[0].text
    streamed: dict[int, str] = {}
    for chunk in oai.completions.create(model="m", prompt=prompts, max_tokens=5, temperature=0, n=2,
                                        stream=True):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
    assert streamed == {c.index: c.text for c in both.choices}


def test_token_id_prompt(oai: OpenAI, live: LiveServer) -> None:
    by_text = oai.completions.create(model="m", prompt=PROMPT, max_tokens=6, temperature=0)
    ids = [t["id"] for t in httpx.post(live.url + "/tokenize", json={"inputs": PROMPT}).json()]
    by_ids = oai.completions.create(model="m", prompt=ids, max_tokens=6, temperature=0, echo=True)
    assert by_text.usage is not None and by_text.usage.prompt_tokens == len(ids)
    assert by_ids.choices[0].text == PROMPT + by_text.choices[0].text


def test_logprobs(oai: OpenAI) -> None:
    c = oai.completions.create(model="m", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3,
                               extra_body={"ignore_eos": True})
    lp = c.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs and lp.text_offset
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 8
    text = c.choices[0].text
    eos = "<|endoftext|>"  # with ignore_eos it may be sampled: listed in logprobs, absent from the text
    assert "".join(t for t in lp.tokens if t != eos) == text
    for token, logprob, top, offset in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, lp.text_offset,
                                           strict=True):
        assert logprob is not None and logprob <= 0
        assert token == eos or text[offset:offset + len(token)] == token
        assert top is not None and 1 <= len(top) <= 4 and top[token] == pytest.approx(logprob)
        assert max(top.values()) == pytest.approx(logprob)  # greedy: the chosen token is the likeliest


def test_streamed_logprobs_match_whole(oai: OpenAI) -> None:
    args: dict[str, Any] = {"model": "m", "prompt": PROMPT, "max_tokens": 6, "temperature": 0, "logprobs": 2,
                            "extra_body": {"ignore_eos": True}}
    whole = oai.completions.create(**args).choices[0].logprobs
    tokens: list[str] = []
    logprobs: list[float | None] = []
    for chunk in oai.completions.create(**args, stream=True):
        for choice in chunk.choices:
            assert choice.logprobs is not None
            tokens += choice.logprobs.tokens or []
            logprobs += choice.logprobs.token_logprobs or []
    assert whole is not None and tokens == whole.tokens
    assert logprobs == pytest.approx(whole.token_logprobs)


def test_echo(oai: OpenAI) -> None:
    plain = oai.completions.create(model="m", prompt=PROMPT, max_tokens=5, temperature=0)
    echoed = oai.completions.create(model="m", prompt=PROMPT, max_tokens=5, temperature=0, echo=True)
    assert echoed.choices[0].text == PROMPT + plain.choices[0].text
    streamed = "".join(ch.text for c in oai.completions.create(model="m", prompt=PROMPT, max_tokens=5,
                                                               temperature=0, echo=True, stream=True)
                       for ch in c.choices)
    assert streamed == echoed.choices[0].text


def test_echo_with_logprobs_scores_the_prompt(oai: OpenAI) -> None:
    # max_tokens 0 + echo + logprobs: what evaluation harnesses use to score a text.
    c = oai.completions.create(model="m", prompt=PROMPT, max_tokens=0, echo=True, logprobs=1)
    choice = c.choices[0]
    assert choice.text == PROMPT and c.usage is not None and c.usage.completion_tokens == 0
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.text_offset is not None
    assert len(lp.tokens) == c.usage.prompt_tokens
    assert lp.token_logprobs[0] is None and all(x is not None and x <= 0 for x in lp.token_logprobs[1:])
    assert "".join(lp.tokens) == PROMPT and lp.text_offset[0] == 0
    # The prompt's logprobs are the engine's: scoring the prompt plus one greedy token agrees with them.
    longer = oai.completions.create(model="m", prompt=PROMPT, max_tokens=1, echo=True, logprobs=1,
                                    temperature=0).choices[0].logprobs
    assert longer is not None and longer.token_logprobs is not None
    assert longer.token_logprobs[1:len(lp.token_logprobs)] == pytest.approx(lp.token_logprobs[1:], abs=1e-4)


def test_stop_string_is_trimmed(oai: OpenAI, live: LiveServer) -> None:
    full = oai.completions.create(model="m", prompt=PROMPT, max_tokens=12, temperature=0,
                                  extra_body={"ignore_eos": True}).choices[0].text
    assert len(full) >= 5, "the tiny model's output is too short to pick a stop string from"
    stop = full[3:5]
    cut = full[: full.index(stop)]
    c = oai.completions.create(model="m", prompt=PROMPT, max_tokens=12, temperature=0,
                               stop=[stop, "never seen"], extra_body={"ignore_eos": True})
    assert c.choices[0].text == cut and c.choices[0].finish_reason == "stop"
    streamed = "".join(ch.text for chunk in oai.completions.create(model="m", prompt=PROMPT, max_tokens=12,
                                                                   temperature=0, stop=stop, stream=True,
                                                                   extra_body={"ignore_eos": True})
                       for ch in chunk.choices)
    assert streamed == cut
    # TGI's /generate keeps the stop string, as TGI does.
    native = httpx.post(live.url + "/generate", json={"inputs": PROMPT, "parameters": {
        "max_new_tokens": 12, "stop": [stop], "ignore_eos": True}}, timeout=60).json()
    assert native["generated_text"].startswith(cut + stop)


def test_stream_disconnect_frees_the_slot(live: LiveServer, oai: OpenAI) -> None:
    stream = oai.completions.create(model="m", prompt=PROMPT, max_tokens=100, temperature=0, n=2, stream=True,
                                    extra_body={"ignore_eos": True})
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 20
    while live.metric("attnserve_running_requests") != 0:
        assert time.monotonic() < deadline, "the stream's generations kept running after the client left"
        time.sleep(0.1)


# ---- embeddings -------------------------------------------------------------------------------------


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def test_embeddings_float_and_base64(oai: OpenAI, live: LiveServer, model_id: str) -> None:
    texts = ["Readability counts.", "Errors should never pass silently."]
    floats = oai.embeddings.create(model="m", input=texts, encoding_format="float")
    assert floats.model == model_id and floats.object == "list"
    assert [d.index for d in floats.data] == [0, 1] and all(d.object == "embedding" for d in floats.data)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    for d in floats.data:
        assert _norm(d.embedding) == pytest.approx(1.0, abs=1e-5)
    native = httpx.post(live.url + "/embed", json={"inputs": texts, "normalize": True}).json()
    assert floats.data[0].embedding == pytest.approx(native[0], abs=1e-6)

    raw = oai.embeddings.create(model="m", input=texts, encoding_format="base64")
    for d, f in zip(raw.data, floats.data, strict=True):
        assert isinstance(d.embedding, str)
        data = base64.b64decode(d.embedding)
        decoded = struct.unpack(f"<{len(data) // 4}f", data)  # little-endian float32, as OpenAI's
        assert list(decoded) == pytest.approx(f.embedding, abs=1e-6)
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    default = oai.embeddings.create(model="m", input=texts[0])
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_embeddings_dimensions(oai: OpenAI, live: LiveServer) -> None:
    text = "Simple is better than complex."
    full = oai.embeddings.create(model="m", input=text).data[0].embedding
    short = oai.embeddings.create(model="m", input=text, dimensions=16).data[0].embedding
    assert len(short) == 16 and _norm(short) == pytest.approx(1.0, abs=1e-5)
    head = full[:16]
    assert short == pytest.approx([x / _norm(head) for x in head], abs=1e-5)
    size = live.app.state.attnserve.engine.cfg.d_model
    with pytest.raises(openai.BadRequestError) as err:
        oai.embeddings.create(model="m", input="x", dimensions=size + 1)
    assert err.value.param == "dimensions" and str(size) in err.value.message


def test_embeddings_bad_input(oai: OpenAI) -> None:
    for bad, param in (([], "input"), (["ok", " "], "input.1")):
        with pytest.raises(openai.BadRequestError) as err:
            oai.embeddings.create(model="m", input=bad, encoding_format="float")
        assert err.value.param == param


# ---- chat ---------------------------------------------------------------------------------------------


MESSAGES: list[Any] = [{"role": "system", "content": "You are terse."},
                       {"role": "user", "content": "Is flat better than nested?"}]


def test_chat_renders_the_template_as_transformers_does(chat_live: LiveServer, chat_dir: Path) -> None:
    transformers = pytest.importorskip("transformers")
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(chat_dir / "tokenizer.json"),
                                               bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    rendered = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert rendered.startswith("<|endoftext|><|system|>\n")
    oai = client_for(chat_live)
    chat = oai.chat.completions.create(model="m", messages=MESSAGES, max_tokens=8, temperature=0,
                                       extra_body={"ignore_eos": True})
    plain = oai.completions.create(model="m", prompt=rendered, max_tokens=8, temperature=0,
                                   extra_body={"ignore_eos": True})
    assert chat.usage is not None and plain.usage is not None
    assert chat.usage.prompt_tokens == plain.usage.prompt_tokens
    assert chat.choices[0].message.content == plain.choices[0].text


def test_chat_whole_and_streamed(chat_live: LiveServer) -> None:
    oai = client_for(chat_live)
    args: dict[str, Any] = {"model": "m", "messages": MESSAGES, "max_tokens": 10, "temperature": 0.9,
                            "seed": 5}
    whole = oai.chat.completions.create(**args)
    assert whole.id.startswith("chatcmpl-") and whole.object == "chat.completion"
    assert whole.model == chat_live.app.state.attnserve.model_id
    choice = whole.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length") and whole.usage.completion_tokens <= 10
    chunks = list(oai.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == choice.message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        choice.finish_reason]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_chat_n_stop_and_logprobs(chat_live: LiveServer) -> None:
    oai = client_for(chat_live)
    base = oai.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10, temperature=0,
                                       extra_body={"ignore_eos": True}).choices[0].message.content or ""
    stop = base[4:6]
    c = oai.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10, temperature=0, n=2,
                                    stop=stop, logprobs=True, top_logprobs=2, extra_body={"ignore_eos": True})
    assert [ch.index for ch in c.choices] == [0, 1]
    for ch in c.choices:
        assert ch.message.content == base[: base.index(stop)] and ch.finish_reason == "stop"
        assert ch.logprobs is not None and ch.logprobs.content
        for entry in ch.logprobs.content:
            assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
            assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)  # greedy: the top one


def test_chat_template_errors_are_400(chat_live: LiveServer) -> None:
    oai = client_for(chat_live)
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="m", messages=[{"role": "tool", "content": "x",  # type: ignore[misc,list-item]
                                                          "tool_call_id": "1"}], max_tokens=2)
    assert "Unknown role: tool" in err.value.message and err.value.param == "messages"


def test_chat_without_a_template_is_a_clear_400(oai: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert "no chat template" in err.value.message and "/v1/completions" in err.value.message
    assert err.value.code == "chat_template_missing" and err.value.type == "invalid_request_error"


# ---- errors and auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "param", "words"), [
    ({"temperature": 5}, "temperature", "less than or equal to 2"),
    ({"top_p": 0}, "top_p", "greater than 0"),
    ({"logprobs": 6}, "logprobs", "less than or equal to 5"),
    ({"n": 0}, "n", "greater than or equal to 1"),
    ({"max_tokens": 10_000}, "max_tokens", "maximum context length"),
    ({"presence_penalty": 1.0}, "presence_penalty", "not supported"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ({"prompt": ""}, "prompt", "must not be empty"),
    ({"prompt": ["ok", 3]}, "prompt", ""),
    ({"prompt": [10**9]}, "prompt", "out of range"),
    ({"seed": "1"}, "seed", "valid integer"),
])
def test_bad_completion_parameters(oai: OpenAI, args: dict[str, Any], param: str, words: str) -> None:
    body = {"model": "m", "prompt": PROMPT, "max_tokens": 4, **args}
    with pytest.raises(openai.BadRequestError) as err:
        oai.completions.create(**body)
    assert err.value.status_code == 400 and err.value.type == "invalid_request_error"
    assert err.value.param == param and words in err.value.message


def test_error_bodies_are_openai_shaped_only_under_v1(live: LiveServer) -> None:
    r = httpx.post(live.url + "/v1/completions", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.get(live.url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = httpx.post(live.url + "/generate", json={"inputs": "x", "parameters": {"temperature": -1}})
    assert r.status_code == 422 and r.json()["error_type"] == "validation"  # native routes keep theirs
    r = httpx.post(live.url + "/v1/completions", json={"prompt": "x", "temperature": -1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
    r = httpx.post(live.url + "/v1/embeddings", json={"input": "x" * 3_000_000})  # over max_body_bytes
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_auth(model_dir: Path) -> None:
    with LiveServer(create_app(make_settings(model_dir, api_key="secret"))) as server:
        with pytest.raises(openai.AuthenticationError) as err:
            client_for(server, "wrong").models.list()
        assert err.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            client_for(server, "wrong").completions.create(model="m", prompt="x", max_tokens=1)
        good = client_for(server, "secret")
        assert good.models.list().data
        assert good.completions.create(model="m", prompt="x", max_tokens=1).choices


def test_full_queue_is_429_and_queues_no_choice(live: LiveServer, oai: OpenAI) -> None:
    scheduler = live.app.state.attnserve.scheduler
    real_submit, real_abort = scheduler.submit, scheduler.abort
    submitted: list[str] = []
    aborted: list[str] = []

    def submit_two(request: Any, sink: Any, deadline: Any = None) -> None:
        if len(submitted) == 2:
            raise Overloaded("the queue is full (2 requests waiting)", retry_after=3)
        submitted.append(request.id)
        real_submit(request, sink, deadline)

    def abort(request_id: str) -> None:
        aborted.append(request_id)
        real_abort(request_id)

    scheduler.submit, scheduler.abort = submit_two, abort
    try:
        with pytest.raises(openai.RateLimitError) as err:
            oai.completions.create(model="m", prompt=PROMPT, max_tokens=50, n=3)
    finally:
        scheduler.submit, scheduler.abort = real_submit, real_abort
    assert err.value.response.headers["retry-after"] == "3" and err.value.type == "rate_limit_error"
    assert "queue is full" in err.value.message
    assert set(submitted) <= set(aborted)  # the choices already queued were withdrawn with the 429


def test_engine_failure_whole_and_mid_stream(live: LiveServer, oai: OpenAI) -> None:
    scheduler = live.app.state.attnserve.scheduler
    calls = {"n": 0}

    def fail_on(step: int) -> Any:
        def inject() -> None:
            calls["n"] += 1
            if calls["n"] == step:
                raise RuntimeError("injected fault")
        return inject

    try:
        scheduler.fault_injector = fail_on(1)
        with pytest.raises(openai.InternalServerError) as err:
            oai.completions.create(model="m", prompt=PROMPT, max_tokens=5)
        assert "injected fault" in err.value.message and err.value.type == "server_error"
        calls["n"] = 0
        scheduler.fault_injector = fail_on(3)
        got: list[str] = []
        with pytest.raises(openai.APIError, match="injected fault"):
            for chunk in oai.completions.create(model="m", prompt=PROMPT, max_tokens=10, temperature=0,
                                                stream=True, extra_body={"ignore_eos": True}):
                got += [c.text for c in chunk.choices]
        assert got  # tokens came before the error event
    finally:
        scheduler.fault_injector = None
    assert oai.completions.create(model="m", prompt=PROMPT, max_tokens=2).choices  # still serving


def test_metrics_count_v1_routes(live: LiveServer, oai: OpenAI) -> None:
    oai.completions.create(model="m", prompt=PROMPT, max_tokens=2)
    text = httpx.get(live.url + "/metrics").text
    assert 'attnserve_requests_total{endpoint="/v1/completions",status="200"}' in text
