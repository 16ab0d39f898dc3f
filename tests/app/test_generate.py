"""POST /generate and / through the real app: shapes, parameters and validation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def gen(client: TestClient, inputs: str = "Beautiful is better", **params: Any) -> Any:
    r = client.post("/generate", json={"inputs": inputs, "parameters": params})
    assert r.status_code == 200, r.text
    return r.json()


def test_generate_returns_text_and_details(client: TestClient) -> None:
    body = gen(client, max_new_tokens=6, details=True, decoder_input_details=True, top_n_tokens=3,
               ignore_eos=True)
    details = body["details"]
    assert details["finish_reason"] == "length"
    assert details["generated_tokens"] == 6 == len(details["tokens"])
    assert body["generated_text"] == "".join(t["text"] for t in details["tokens"] if not t["special"])
    for token, alternatives in zip(details["tokens"], details["top_tokens"], strict=True):
        assert token["logprob"] <= 0
        assert len(alternatives) == 3
        assert alternatives[0]["logprob"] >= alternatives[1]["logprob"] >= alternatives[2]["logprob"]
        assert token["logprob"] == pytest.approx(alternatives[0]["logprob"], abs=1e-5)  # greedy = the top one
    prefill = details["prefill"]
    assert prefill[0]["logprob"] is None and all(p["logprob"] <= 0 for p in prefill[1:])
    assert details["seed"] is None  # greedy


def test_details_off_by_default_and_full_text(client: TestClient) -> None:
    body = gen(client, "Simple is", max_new_tokens=3, return_full_text=True)
    assert body["details"] is None
    assert body["generated_text"].startswith("Simple is")


def test_compat_route_wraps_in_a_list(client: TestClient) -> None:
    r = client.post("/", json={"inputs": "Flat is better", "parameters": {"max_new_tokens": 4}})
    assert r.status_code == 200
    single = gen(client, "Flat is better", max_new_tokens=4)
    assert r.json() == [single]


def test_greedy_is_deterministic_and_seed_reproduces_sample(client: TestClient) -> None:
    assert gen(client, max_new_tokens=8) == gen(client, max_new_tokens=8)
    a = gen(client, max_new_tokens=12, do_sample=True, seed=42, temperature=3.0, details=True)
    b = gen(client, max_new_tokens=12, do_sample=True, seed=42, temperature=3.0, details=True)
    assert a == b and a["details"]["seed"] == 42
    others = [gen(client, max_new_tokens=12, do_sample=True, seed=s, temperature=3.0)["generated_text"]
              for s in range(43, 48)]
    assert any(text != a["generated_text"] for text in others)


def test_unseeded_sample_reports_the_seed_that_reproduces_it(client: TestClient) -> None:
    first = gen(client, max_new_tokens=10, temperature=1.5, details=True)
    seed = first["details"]["seed"]
    assert isinstance(seed, int)
    again = gen(client, max_new_tokens=10, temperature=1.5, seed=seed, details=True)
    assert again["generated_text"] == first["generated_text"]


def test_stop_sequence_ends_generation(client: TestClient) -> None:
    free = gen(client, max_new_tokens=20, ignore_eos=True)["generated_text"]
    stop = free[3:5] if len(free) >= 5 else free[-1]
    body = gen(client, max_new_tokens=20, ignore_eos=True, stop=[stop], details=True)
    assert body["details"]["finish_reason"] == "stop_sequence"
    assert body["generated_text"].endswith(stop) or stop in body["generated_text"]
    assert len(body["generated_text"]) <= len(free)


def test_truncate_keeps_the_last_tokens(client: TestClient) -> None:
    long_prompt = "Errors should never pass silently. " * 20
    tokens = client.post("/tokenize", json={"inputs": long_prompt}).json()
    tail = long_prompt[tokens[-8]["start"]:]
    a = gen(client, long_prompt, max_new_tokens=5, truncate=8, details=True)
    b = gen(client, tail, max_new_tokens=5, details=True)
    assert a["generated_text"] == b["generated_text"]


def test_tgi_client_null_fields_are_accepted(client: TestClient) -> None:
    params = {"best_of": None, "decoder_input_details": False, "details": True, "do_sample": False,
              "frequency_penalty": None, "grammar": None, "max_new_tokens": 3, "repetition_penalty": None,
              "return_full_text": False, "seed": None, "stop": [], "temperature": None, "top_k": None,
              "top_n_tokens": None, "top_p": None, "truncate": None, "typical_p": None, "watermark": False,
              "adapter_id": None}
    r = client.post("/generate", json={"inputs": "Now is better", "parameters": params, "stream": False})
    assert r.status_code == 200, r.text


LONG = "word " * 400

BAD_REQUESTS: list[tuple[Any, str]] = [
    ({"inputs": ""}, "inputs"),
    ({"inputs": "   \n\t"}, "inputs"),
    ({}, "inputs"),
    ({"inputs": 5}, "inputs"),
    ({"inputs": ["a"]}, "inputs"),
    ({"inputs": "x", "parameters": {"max_new_tokens": -1}}, "max_new_tokens"),
    ({"inputs": "x", "parameters": {"max_new_tokens": 0}}, "max_new_tokens"),
    ({"inputs": "x", "parameters": {"max_new_tokens": 10**9}}, "max_new_tokens"),
    ({"inputs": "x", "parameters": {"max_new_tokens": "5"}}, "max_new_tokens"),
    ({"inputs": "x", "parameters": {"max_new_tokens": 5.5}}, "max_new_tokens"),
    ({"inputs": "x", "parameters": {"top_p": 0}}, "top_p"),
    ({"inputs": "x", "parameters": {"top_p": 1.5}}, "top_p"),
    ({"inputs": "x", "parameters": {"top_k": 0}}, "top_k"),
    ({"inputs": "x", "parameters": {"temperature": 0, "do_sample": True}}, "temperature"),
    ({"inputs": "x", "parameters": {"temperature": -1}}, "temperature"),
    ({"inputs": "x", "parameters": {"repetition_penalty": 0}}, "repetition_penalty"),
    ({"inputs": "x", "parameters": {"do_sample": 1}}, "do_sample"),
    ({"inputs": "x", "parameters": {"do_sample": "true"}}, "do_sample"),
    ({"inputs": "x", "parameters": {"seed": -3}}, "seed"),
    ({"inputs": "x", "parameters": {"stop": "abc"}}, "stop"),
    ({"inputs": "x", "parameters": {"stop": ["a"] * 300}}, "stop"),
    ({"inputs": "x", "parameters": {"stop": ["x" * 1000]}}, "stop"),
    ({"inputs": "x", "parameters": {"stop": [""]}}, "stop"),
    ({"inputs": "x", "parameters": {"top_n_tokens": 1000}}, "top_n_tokens"),
    ({"inputs": "x", "parameters": {"watermark": True}}, "watermark"),
    ({"inputs": "x", "parameters": {"best_of": 2}}, "best_of"),
    ({"inputs": "x", "parameters": {"typical_p": 0.5}}, "typical_p"),
    ({"inputs": "x", "parameters": {"grammar": {"type": "json", "value": {}}}}, "grammar"),
    ({"inputs": "x", "parameters": {"truncate": 0}}, "truncate"),
    ({"inputs": LONG}, "inputs"),
    ({"inputs": "x", "parameters": []}, "parameters"),
    ({"inputs": "x", "stream": "yes"}, "stream"),
]


@pytest.mark.parametrize(("body", "field"), BAD_REQUESTS)
def test_bad_input_is_a_422_naming_the_field(client: TestClient, body: Any, field: str) -> None:
    r = client.post("/generate", json=body)
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["error_type"] == "validation"
    assert field in error["error"]


def test_too_long_names_both_numbers(client: TestClient) -> None:
    r = client.post("/generate", json={"inputs": "Errors should never", "parameters": {"max_new_tokens": 126}})
    assert r.status_code == 422
    message = r.json()["error"]
    assert "126" in message and "128" in message and "max_new_tokens" in message


@pytest.mark.parametrize("raw", [b"{bad json", b'{"inputs": "x", "parameters": {"temperature": NaN}}',
                                 b'{"inputs": "x", "parameters": {"top_p": Infinity}}', b"\xff\xfe\x00",
                                 b'"just a string"', b""])
def test_malformed_bodies_are_422(client: TestClient, raw: bytes) -> None:
    r = client.post("/generate", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error_type"] == "validation"


@pytest.mark.parametrize("text", ["😀🎉 emoji", "控制\x00\x01\x1b字符", "Ünïcödé テキスト", "\u200b\u202e rtl"])
def test_unusual_text_is_served(client: TestClient, text: str) -> None:
    r = client.post("/generate", json={"inputs": text, "parameters": {"max_new_tokens": 4}})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["generated_text"], str)
