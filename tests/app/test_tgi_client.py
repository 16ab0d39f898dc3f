"""The native routes against real TGI client libraries: wire compatibility, not just our own parsing.

huggingface_hub's InferenceClient is driven at /generate and /generate_stream (a URL as the model)
and at the root (base_url, where it posts like TGI's own client). TGI's `text-generation` package is
used when it is installed: it pins huggingface_hub < 1.0, which the rest of the test stack outgrew,
so it is not in the test extra (it still imports and works beside huggingface_hub 2.x).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient
from huggingface_hub.errors import ValidationError

from .conftest import LiveServer

PROMPT = "Now is better than"


def native(live: LiveServer, **parameters: Any) -> dict[str, Any]:
    body = {"inputs": PROMPT, "parameters": {"details": True, **parameters}}
    reply: dict[str, Any] = httpx.post(live.url + "/generate", json=body, timeout=60).json()
    return reply


def test_inference_client_generate(live: LiveServer) -> None:
    client = InferenceClient(model=live.url + "/generate", timeout=60)
    out = client.text_generation(PROMPT, max_new_tokens=8, details=True, decoder_input_details=True,
                                 top_n_tokens=2)
    expected = native(live, max_new_tokens=8)
    assert out.generated_text == expected["generated_text"]
    details = out.details
    assert details is not None and details.finish_reason == expected["details"]["finish_reason"]
    assert details.generated_tokens == len(details.tokens) == expected["details"]["generated_tokens"]
    assert "".join(t.text for t in details.tokens if not t.special) == out.generated_text
    assert details.prefill and details.prefill[0].logprob is None
    assert details.top_tokens is not None and all(len(alts) == 2 for alts in details.top_tokens)
    assert client.text_generation(PROMPT, max_new_tokens=8) == out.generated_text  # plain text reply


def test_inference_client_stream(live: LiveServer) -> None:
    whole = native(live, max_new_tokens=10, ignore_eos=True)["generated_text"]
    for route in ("/generate_stream", "/generate"):  # /generate answers as /generate_stream with stream
        client = InferenceClient(model=live.url + route, timeout=60)
        events = list(client.text_generation(PROMPT, max_new_tokens=10, details=True, stream=True))
        last = events[-1]
        assert last.generated_text is not None and last.details is not None
        assert last.details.generated_tokens == len(events)
        assert "".join(e.token.text for e in events if not e.token.special) == last.generated_text
        assert all(e.generated_text is None for e in events[:-1])
        pieces = list(client.text_generation(PROMPT, max_new_tokens=10, stream=True))
        assert "".join(pieces) == last.generated_text
    # With ignore_eos the native reply ran the full 10 tokens; the clients' may stop at EOS earlier.
    assert whole.startswith(last.generated_text)


def test_inference_client_seeded_sampling_and_stop(live: LiveServer) -> None:
    client = InferenceClient(base_url=live.url, timeout=60)  # TGI's root route, as TGI serves it
    args: dict[str, Any] = {"max_new_tokens": 12, "do_sample": True, "temperature": 1.3, "seed": 42}
    whole = client.text_generation(PROMPT, details=True, **args)
    assert whole.details is not None and whole.details.seed == 42
    streamed = "".join(client.text_generation(PROMPT, stream=True, **args))
    assert streamed == whole.generated_text
    greedy = client.text_generation(PROMPT, max_new_tokens=12)
    assert len(greedy) >= 4, "the tiny model ended too early to pick a stop sequence from its output"
    stop = greedy[1:4]
    stopped = client.text_generation(PROMPT, max_new_tokens=12, stop=[stop], details=True)
    assert stopped.details is not None and stopped.details.finish_reason == "stop_sequence"
    # TGI keeps the stop sequence, and the rest of the token that completed it.
    assert stop in stopped.generated_text and greedy.startswith(stopped.generated_text)


def test_inference_client_errors(live: LiveServer) -> None:
    client = InferenceClient(base_url=live.url, timeout=60)
    with pytest.raises(ValidationError, match="max_new_tokens"):
        client.text_generation(PROMPT, max_new_tokens=100_000)
    with pytest.raises(ValidationError, match="inputs"):
        list(client.text_generation("", max_new_tokens=2, stream=True))


def test_async_inference_client(live: LiveServer) -> None:
    async def run() -> list[str]:
        client = AsyncInferenceClient(model=live.url + "/generate", timeout=60)
        replies = await asyncio.gather(*(client.text_generation(f"{PROMPT} {i}", max_new_tokens=4)
                                         for i in range(4)))
        return list(replies)

    replies = asyncio.run(run())
    for i, reply in enumerate(replies):
        body = {"inputs": f"{PROMPT} {i}", "parameters": {"max_new_tokens": 4}}
        assert reply == httpx.post(live.url + "/generate", json=body, timeout=60).json()["generated_text"]


def test_text_generation_client(live: LiveServer) -> None:
    text_generation = pytest.importorskip("text_generation")
    client = text_generation.Client(live.url, timeout=60)  # posts to / and expects [{...}]
    reply = client.generate(PROMPT, max_new_tokens=8, decoder_input_details=True, top_n_tokens=2)
    assert reply.generated_text == native(live, max_new_tokens=8)["generated_text"]
    assert reply.details.prefill and len(reply.details.tokens) == reply.details.generated_tokens
    assert all(len(alts) == 2 for alts in reply.details.top_tokens)
    stream_client = text_generation.Client(live.url + "/generate_stream", timeout=60)
    events = list(stream_client.generate_stream(PROMPT, max_new_tokens=8))
    assert events[-1].generated_text == reply.generated_text
    assert "".join(e.token.text for e in events if not e.token.special) == reply.generated_text
    assert [e.token.text for e in client.generate_stream(PROMPT, max_new_tokens=8)] == [
        e.token.text for e in events]
    with pytest.raises(text_generation.errors.ValidationError, match="best_of"):
        client.generate(PROMPT, max_new_tokens=2, best_of=2, do_sample=True)
