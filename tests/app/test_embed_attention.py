"""POST /embed, /attention and /tokenize through the real app."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient


def test_embed_one_row_per_input(client: TestClient) -> None:
    r = client.post("/embed", json={"inputs": ["Simple is better", "Flat is better than nested", "x"]})
    assert r.status_code == 200, r.text
    rows = r.json()
    assert len(rows) == 3 and len({len(row) for row in rows}) == 1 and len(rows[0]) == 64
    for row in rows:
        assert math.isclose(math.sqrt(sum(v * v for v in row)), 1.0, rel_tol=1e-5)


def test_embed_string_input_and_batch_independence(client: TestClient) -> None:
    single = client.post("/embed", json={"inputs": "Readability counts"}).json()
    batch = client.post("/embed", json={"inputs": ["Readability counts", "a much longer sentence " * 5]}).json()
    assert len(single) == 1
    assert single[0] == pytest.approx(batch[0], abs=1e-5)  # padding never leaks into a shorter input


def test_embed_without_normalize_is_not_unit_length(client: TestClient) -> None:
    row = client.post("/embed", json={"inputs": "Readability counts", "normalize": False}).json()[0]
    assert not math.isclose(math.sqrt(sum(v * v for v in row)), 1.0, rel_tol=1e-3)


def test_embed_truncate(client: TestClient) -> None:
    long = "Errors should never pass silently. " * 80
    assert client.post("/embed", json={"inputs": long}).status_code == 422
    r = client.post("/embed", json={"inputs": long, "truncate": True})
    assert r.status_code == 200 and len(r.json()) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"inputs": ""}, "inputs"), ({"inputs": []}, "inputs"), ({"inputs": ["ok", " "]}, "inputs[1]"),
    ({"inputs": ["x"] * 65}, "inputs"), ({"inputs": 3}, "inputs"), ({"inputs": "x", "normalize": "yes"}, "normalize"),
])
def test_embed_bad_input(client: TestClient, body: Any, field: str) -> None:
    r = client.post("/embed", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]


def test_attention_rows_sum_to_one_and_causal(client: TestClient) -> None:
    r = client.post("/attention", json={"inputs": "Sparse is better than dense"})
    assert r.status_code == 200, r.text
    body = r.json()
    T = len(body["tokens"])
    assert body["causal"] is True and body["layers"] == [0, 1] and body["heads"] == [0, 1, 2, 3]
    assert len(body["attentions"]) == 2 and len(body["attentions"][0]) == 4
    for layer in body["attentions"]:
        for head in layer:
            assert len(head) == T and all(len(row) == T for row in head)
            for q, row in enumerate(head):
                assert sum(row) == pytest.approx(1.0, abs=1e-5)
                assert all(v == 0 for v in row[q + 1:])
    text = "Sparse is better than dense"
    assert "".join(text[t["start"]:t["stop"]] for t in body["tokens"]) == text


def test_attention_selection_and_mean(client: TestClient) -> None:
    full = client.post("/attention", json={"inputs": "Now is better"}).json()
    some = client.post("/attention", json={"inputs": "Now is better", "layers": [1], "heads": [2, 0]}).json()
    assert some["layers"] == [1] and some["heads"] == [2, 0]
    assert flat(some["attentions"][0][0]) == pytest.approx(flat(full["attentions"][1][2]), abs=1e-6)
    assert flat(some["attentions"][0][1]) == pytest.approx(flat(full["attentions"][1][0]), abs=1e-6)
    mean = client.post("/attention", json={"inputs": "Now is better", "aggregate": "mean_heads"}).json()
    assert len(mean["attentions"][0]) == 1
    expected = [[sum(full["attentions"][0][h][q][k] for h in range(4)) / 4 for k in range(len(row))]
                for q, row in enumerate(full["attentions"][0][0])]
    assert flat(mean["attentions"][0][0]) == pytest.approx(flat(expected), abs=1e-5)


def flat(rows: list[list[float]]) -> list[float]:
    return [v for row in rows for v in row]


@pytest.mark.parametrize(("body", "field"), [
    ({"inputs": ""}, "inputs"), ({"inputs": "x", "layers": [2]}, "layers"), ({"inputs": "x", "heads": [-1]}, "heads"),
    ({"inputs": "x", "layers": []}, "layers"), ({"inputs": "x", "aggregate": "max"}, "aggregate"),
    ({"inputs": "word " * 200}, "inputs"),
])
def test_attention_bad_input(client: TestClient, body: Any, field: str) -> None:
    r = client.post("/attention", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]


def test_attention_cap_is_named(client: TestClient) -> None:
    r = client.post("/attention", json={"inputs": "word " * 200})
    assert "128" in r.json()["error"]


def test_tokenize_spans(client: TestClient) -> None:
    text = "Beautiful is better 😀"
    tokens = client.post("/tokenize", json={"inputs": text}).json()
    assert tokens and all(set(t) == {"id", "text", "start", "stop"} for t in tokens)
    assert tokens[0]["start"] == 0 and tokens[-1]["stop"] == len(text)
