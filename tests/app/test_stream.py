"""SSE streaming over a real socket, parsed by a real SSE client (httpx-sse)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from app.main import create_app

from .conftest import LiveServer, make_settings


def stream_events(live: LiveServer, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.Client(base_url=live.url, timeout=30) as client, \
            connect_sse(client, "POST", path, json=body) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [json.loads(event.data) for event in source.iter_sse()]


def test_stream_tokens_add_up_to_generated_text(live: LiveServer) -> None:
    body = {"inputs": "Although never is often better", "parameters": {"max_new_tokens": 12, "ignore_eos": True}}
    events = stream_events(live, "/generate_stream", body)
    assert [e["index"] for e in events] == list(range(1, 13))
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    last = events[-1]
    assert last["details"] == {"finish_reason": "length", "generated_tokens": 12, "seed": None,
                               "input_length": last["details"]["input_length"]}
    assert last["details"]["input_length"] > 0
    assert "".join(e["token"]["text"] for e in events if not e["token"]["special"]) == last["generated_text"]
    whole = httpx.post(live.url + "/generate", json=body, timeout=30).json()
    assert whole["generated_text"] == last["generated_text"]


def test_generate_with_stream_true_and_compat_route_stream(live: LiveServer) -> None:
    body = {"inputs": "If the implementation", "parameters": {"max_new_tokens": 5}, "stream": True}
    a = stream_events(live, "/generate", body)
    b = stream_events(live, "/", body)
    assert a == b and a[-1]["generated_text"] is not None


def test_streamed_pieces_never_split_a_character(live: LiveServer) -> None:
    # Sampling from a random byte-level model produces partial UTF-8 sequences; no piece may carry
    # half a character: U+FFFD appears only where the bytes really are invalid, never mid-stream.
    for seed in range(6):
        body = {"inputs": "😀 テキスト", "parameters": {"max_new_tokens": 24, "do_sample": True, "seed": seed,
                                                      "temperature": 1.5, "ignore_eos": True}}
        events = stream_events(live, "/generate_stream", body)
        pieces = [e["token"]["text"] for e in events]
        assert "".join(pieces) == events[-1]["generated_text"]
        for piece in pieces[:-1]:
            assert not piece.endswith("\ufffd") or piece.strip("\ufffd") != piece[:-1]


def test_stream_validation_error_is_plain_422(live: LiveServer) -> None:
    r = httpx.post(live.url + "/generate_stream", json={"inputs": "", "parameters": {}})
    assert r.status_code == 422
    assert r.json()["error_type"] == "validation"


def test_keepalive_comments_during_long_gaps(model_dir: Path) -> None:
    with LiveServer(create_app(make_settings(model_dir, stream_keepalive_s=0.05))) as server:
        server.app.state.attnserve.scheduler.fault_injector = lambda: time.sleep(0.2)  # slow steps
        body = {"inputs": "Flat", "parameters": {"max_new_tokens": 3, "ignore_eos": True}}
        with httpx.stream("POST", server.url + "/generate_stream", json=body, timeout=30) as r:
            lines = [line for line in r.iter_lines() if line]
        assert any(line.startswith(":") for line in lines)
        data = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
        assert len(data) == 3 and data[-1]["details"]["finish_reason"] == "length"
