"""Auth, body limits, injected engine faults and the deadline, through HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app

from .conftest import LiveServer, make_settings


def test_api_key(model_dir: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("file-key\n")
    settings = make_settings(model_dir, api_key="k1,k2", api_key_file=key_file)
    with TestClient(create_app(settings)) as client:
        body = {"inputs": "Simple", "parameters": {"max_new_tokens": 2}}
        assert client.post("/generate", json=body).status_code == 401
        wrong = client.post("/generate", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error_type"] == "unauthorized"
        for key in ("k1", "k2", "file-key"):
            assert client.post("/generate", json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.post("/embed", json={"inputs": "x"}).status_code == 401
        assert client.get("/info").status_code == 401
        for open_path in ("/health", "/live", "/metrics"):
            assert client.get(open_path).status_code == 200


def test_body_over_the_limit_is_413(model_dir: Path) -> None:
    with TestClient(create_app(make_settings(model_dir))) as client:
        big = json.dumps({"inputs": "x" * 10_000_000})
        r = client.post("/generate", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error_type"] == "validation"
        assert client.post("/generate", json={"inputs": "ok", "parameters": {"max_new_tokens": 2}}).status_code == 200


def test_failing_step_fails_only_its_requests(live: LiveServer) -> None:
    scheduler = live.app.state.attnserve.scheduler
    calls = {"n": 0}

    def fail_once() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected fault")

    scheduler.fault_injector = fail_once
    try:
        r = httpx.post(live.url + "/generate", json={"inputs": "Flat", "parameters": {"max_new_tokens": 3}})
        assert r.status_code == 500 and r.json()["error_type"] == "generation"
        assert "injected fault" in r.json()["error"]
        ok = httpx.post(live.url + "/generate", json={"inputs": "Flat", "parameters": {"max_new_tokens": 3}})
        assert ok.status_code == 200  # the loop kept serving
        assert httpx.get(live.url + "/health").status_code == 200
    finally:
        scheduler.fault_injector = None


def test_fault_mid_stream_is_an_error_event(live: LiveServer) -> None:
    scheduler = live.app.state.attnserve.scheduler
    calls = {"n": 0}

    def fail_third() -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected fault")

    scheduler.fault_injector = fail_third
    try:
        body = {"inputs": "Sparse", "parameters": {"max_new_tokens": 10, "ignore_eos": True}}
        with httpx.stream("POST", live.url + "/generate_stream", json=body) as r:
            events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
        assert r.status_code == 200
        assert "token" in events[0]
        assert events[-1]["error_type"] == "generation" and "injected fault" in events[-1]["error"]
    finally:
        scheduler.fault_injector = None


def test_out_of_memory_retries_with_a_smaller_batch(live: LiveServer) -> None:
    scheduler = live.app.state.attnserve.scheduler
    engine = scheduler.engine
    real_step = engine.step
    ooms = {"n": 0}

    def step_oom_when_big(batch):  # type: ignore[no-untyped-def]
        if len(batch) > 4:
            ooms["n"] += 1
            raise torch.OutOfMemoryError("injected: CUDA out of memory")
        return real_step(batch)

    engine.step = step_oom_when_big
    # Hold the loop briefly so all eight requests queue up and join one batch.
    scheduler.fault_injector = lambda: time.sleep(0.5)
    try:
        bodies = [{"inputs": f"Now is better {i}", "parameters": {"max_new_tokens": 6, "ignore_eos": True}}
                  for i in range(8)]

        async def run() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
                pending = [asyncio.ensure_future(client.post("/generate", json=b)) for b in bodies]
                await asyncio.sleep(0.2)
                scheduler.fault_injector = None
                return await asyncio.gather(*pending)

        replies = asyncio.run(run())
        assert [r.status_code for r in replies] == [200] * 8  # halves of 4 fit: nobody fails
        assert ooms["n"] >= 1
    finally:
        engine.step = real_step
        scheduler.fault_injector = None
    assert httpx.get(live.url + "/health").status_code == 200


def test_stalled_loop_turns_health_503(model_dir: Path) -> None:
    settings = make_settings(model_dir, stall_timeout_s=0.3)
    with LiveServer(create_app(settings)) as server:
        scheduler = server.app.state.attnserve.scheduler
        scheduler.fault_injector = lambda: time.sleep(2.0)
        try:
            body = {"inputs": "Flat", "parameters": {"max_new_tokens": 2}}
            with httpx.Client(base_url=server.url, timeout=30) as client:
                pending = client.build_request("POST", "/generate", json=body)
                t = threading.Thread(target=client.send, args=(pending,))
                t.start()
                time.sleep(0.8)
                assert httpx.get(server.url + "/health").status_code == 503
                assert httpx.get(server.url + "/live").status_code == 200
                scheduler.fault_injector = None
                t.join()
            assert httpx.get(server.url + "/health").status_code == 200
        finally:
            scheduler.fault_injector = None


@pytest.mark.parametrize("timeout_s", [0.3])
def test_deadline_ends_generation_with_time_limit(model_dir: Path, timeout_s: float) -> None:
    with LiveServer(create_app(make_settings(model_dir, request_timeout_s=timeout_s))) as server:
        server.app.state.attnserve.scheduler.fault_injector = lambda: time.sleep(0.02)
        body = {"inputs": "Flat", "parameters": {"max_new_tokens": 100, "ignore_eos": True, "details": True}}
        r = httpx.post(server.url + "/generate", json=body, timeout=30)
        assert r.status_code == 200
        details = r.json()["details"]
        assert details["finish_reason"] == "time_limit" and details["generated_tokens"] < 100


def test_cors_off_by_default_and_configurable(model_dir: Path) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(make_settings(model_dir))) as client:
        r = client.options("/generate", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    with TestClient(create_app(make_settings(model_dir, cors_origins=["https://app.example"]))) as client:
        r = client.options("/generate", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
