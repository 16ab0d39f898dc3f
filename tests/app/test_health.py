"""/health, /live, /info, /metrics and the OpenAPI document."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

METRICS = ["attnserve_requests_total", "attnserve_request_duration_seconds", "attnserve_time_to_first_token_seconds",
           "attnserve_inter_token_latency_seconds", "attnserve_queue_wait_seconds", "attnserve_queue_size",
           "attnserve_running_requests", "attnserve_batch_size", "attnserve_batch_tokens",
           "attnserve_prompt_tokens_total", "attnserve_generated_tokens_total", "attnserve_kv_cache_usage_ratio",
           "attnserve_model_info"]


def test_health_live_info(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/live").status_code == 200
    info = client.get("/info").json()
    assert info["model_type"] == "attnserve" and info["causal"] is True
    assert info["max_total_tokens"] == 128 and info["max_input_tokens"] == 127
    assert info["model_device_type"] == "cpu" and info["model_dtype"] == "float32"


def test_metrics_after_traffic(client: TestClient) -> None:
    client.post("/generate", json={"inputs": "Flat is better", "parameters": {"max_new_tokens": 5, "ignore_eos": True}})
    client.post("/embed", json={"inputs": "x"})
    text = client.get("/metrics").text
    for name in METRICS:
        assert re.search(rf"^{name}(_bucket|_count|_sum)?[{{ ]", text, re.M), name
    assert re.search(r'^attnserve_requests_total\{endpoint="/generate",status="200"\} [1-9]', text, re.M)
    count = re.search(r"^attnserve_time_to_first_token_seconds_count (\S+)", text, re.M)
    assert count and float(count.group(1)) >= 1
    itl = re.search(r"^attnserve_inter_token_latency_seconds_count (\S+)", text, re.M)
    assert itl and float(itl.group(1)) >= 4
    assert re.search(r'^attnserve_model_info\{.*device="cpu".*\} 1', text, re.M)


def test_errors_share_one_body_and_request_id_roundtrip(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error_type"] == "not_found"
    r = client.get("/live", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


def test_openapi_documents_errors_and_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/generate", "/generate_stream", "/embed", "/attention", "/"):
        responses = spec["paths"][path]["post"]["responses"]
        assert {"200", "422", "429", "503"} <= set(responses), path
    assert "examples" in spec["components"]["schemas"]["GenerateRequest"]
