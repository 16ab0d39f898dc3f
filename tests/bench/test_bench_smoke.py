"""A few seconds of the benchmark, to keep it working (never a speed assertion).

The load generator launches `python -m app` on a tiny model, streams two requests of three
tokens at two concurrency levels, and must parse every SSE event and write its JSON and
markdown. The SSE parser is also checked offline against a canned stream, and (slow) the
whole suite runs on tiny models.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
from pathlib import Path

import httpx
import pytest

from bench import run, serve
from bench.loadgen import Level, drive, stream_one
from bench.stats import percentile
from tests.app.conftest import build_tiny_model


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0


def test_sse_parser_counts_tokens_and_reads_the_last_event() -> None:
    events = [{"index": i, "token": {"id": i, "text": '"details":null', "logprob": -1.0, "special": False},
               "generated_text": None, "details": None} for i in (1, 2)]
    events.append({"index": 3, "token": {"id": 3, "text": "!", "logprob": -1.0, "special": False},
                   "generated_text": "abc", "details": {"finish_reason": "length", "generated_tokens": 3,
                                                       "seed": None, "input_length": 7}})
    # A keep-alive comment, then compact JSON as the server writes it; a token's text that spells
    # the parser's marker must not fool it (its quotes are escaped in the JSON).
    lines = ["data:" + json.dumps(e, separators=(",", ":")) + "\n\n" for e in events]
    body = ": keep-alive\n\n" + "".join(lines)

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["parameters"]["ignore_eos"] is True
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            record = await stream_one(client, "http://test", "prompt", 3, truncate=10)
        assert record.ok and len(record.token_times) == 3 and record.input_tokens == 7

    asyncio.run(go())


def test_load_generator_against_a_launched_server(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "out"
    serve.main(["--launch", "--model", str(model), "--threads", "1", "--max-batch-size", "4",
                "--concurrency", "1,2", "--num-requests", "2", "--max-new-tokens", "3", "--warmup", "1",
                "--prompt-words", "4,12", "--out", str(out), "--no-progress"])
    result = json.loads((out / "serve.json").read_text())
    for level in ("c=1", "c=2"):
        stats = result["generate"][level]
        assert stats["ok"] == 2 and stats["errors"] == 0, stats["error_examples"]
        assert stats["output_tokens"] == 6 and stats["short_streams"] == 0
        assert stats["input_tokens"] > 0 and stats["ttft_ms"]["p50"] > 0
    table = (out / "serve.md").read_text()
    assert "| c=1 | 2 |" in table and "TTFT p50 ms" in table
    assert "Steady state" not in table  # no ramp-up asked
    if importlib.util.find_spec("matplotlib") is not None:  # the chart needs the `bench` extra
        assert (out / "serve.png").stat().st_size > 0


def test_ramped_clients_start_one_by_one() -> None:
    starts: list[float] = []

    async def job(client: httpx.AsyncClient) -> float:
        starts.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.3)
        return 0.0

    async def go() -> None:
        await drive(Level(4, ramp_up_s=0.2), [job] * 8, seed=0, progress=None)

    asyncio.run(go())
    first = sorted(starts)[:4]
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert all(gap >= 0.04 for gap in gaps), gaps  # 0.05 s apart, not all at once


@pytest.mark.slow
def test_whole_suite_on_tiny_models(tmp_path: Path) -> None:
    """`python -m bench.run --suite smoke`: every part runs and the report has every target row."""
    pytest.importorskip("transformers")
    pytest.importorskip("sentence_transformers")
    out = tmp_path / "out"
    run.main(["--suite", "smoke", "--models-dir", str(tmp_path / "models"), "--out", str(out), "--skip", "bf16",
              "--repeats", "1", "--no-progress"])
    results = json.loads((out / "results.json").read_text())
    assert {"hardware", "gpt2", "default", "encoder", "targets"} <= set(results)
    assert results["gpt2"]["http"]["c=1"]["ok"] == results["gpt2"]["requests"]["c=1"]
    assert results["gpt2"]["hf_single"]["tokens_per_s"]["median"] > 0
    ramped = results["gpt2"]["http_ramped"]["c=2-ramped"]  # the top level again, clients ramped up
    assert ramped["ramp_up_s"] > 0 and ramped["steady"]["requests"] >= 1
    assert results["default"]["engine_overhead"]["step_ms"] > 0
    assert results["encoder"]["cosine"]["min"] > 0.9999  # /embed and sentence-transformers agree
    assert [t["number"] for t in results["targets"]] == ["1", "2a", "2b", "3", "4", "5", "6a", "6b", "7"]
    assert "## Targets" in (out / "results.md").read_text()
