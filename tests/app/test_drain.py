"""Graceful drain: a real `python -m app` process receives SIGTERM with streams in flight."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from .conftest import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_drains_admitted_streams_then_exits_zero(tmp_path: Path) -> None:
    # A long context, so that each stream lasts a few seconds even with a tiny model.
    model_dir = build_tiny_model(tmp_path, max_seq_len=2048, n_layers=4, d_model=128)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ATTNSERVE_TORCH_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "app", "--model", str(model_dir), "--port", str(port),
                             "--drain-timeout-s", "30"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)

        results: list[str | None] = [None] * 4
        started = threading.Barrier(5)

        def stream(i: int) -> None:
            body = {"inputs": "Beautiful is better", "parameters": {"max_new_tokens": 800, "ignore_eos": True}}
            with httpx.stream("POST", url + "/generate_stream", json=body, timeout=60) as r:
                lines = r.iter_lines()
                next(lines)  # the first token arrived: the stream is admitted and running
                started.wait()
                events = [line for line in lines if line.startswith("data:")]
                results[i] = events[-1]

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        started.wait(timeout=30)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert httpx.get(url + "/health").status_code == 503
        late = httpx.post(url + "/generate", json={"inputs": "late", "parameters": {"max_new_tokens": 2}})
        assert late.status_code == 503 and late.json()["error_type"] == "unhealthy"
        for t in threads:
            t.join(timeout=60)
        for last in results:
            assert last is not None and '"finish_reason":"length"' in last and '"generated_tokens":800' in last
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
