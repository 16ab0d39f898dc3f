"""The load generator's core: async httpx clients against /generate_stream and /embed.

At a fixed concurrency, N workers each keep one request in flight (a closed loop, as
vLLM's benchmark_serving with --max-concurrency); at a request rate, requests start at
Poisson arrival times whatever is still running (an open loop). Every token's arrival is
timed on the client, so TTFT and inter-token latency include the HTTP and SSE layers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from tqdm import tqdm

from .stats import percentile, spread


@dataclass
class Level:
    """One load setting: a fixed concurrency, or a Poisson rate (optionally capped in concurrency)."""

    concurrency: int | None = None
    rate: float | None = None  # requests per second
    # Closed loop only: the workers start one by one over this many seconds instead of all at
    # once (as k6's ramping-vus or Locust's spawn rate), so that requests of a fixed length do not
    # arrive in synchronized waves; latencies are then also reported for the steady state.
    ramp_up_s: float = 0.0

    @property
    def name(self) -> str:
        if self.rate is not None:
            return f"rate={self.rate:g}"
        return f"c={self.concurrency}" + ("-ramped" if self.ramp_up_s else "")

    @property
    def x(self) -> float:
        """Where the level sits on a chart's x axis."""
        return float(self.rate if self.rate is not None else self.concurrency or 1)


@dataclass
class GenRecord:
    start: float
    token_times: list[float] = field(default_factory=list)
    input_tokens: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.token_times)


@dataclass
class EmbedRecord:
    start: float
    end: float
    sentences: int
    vectors: list[list[float]] | None = None
    error: str | None = None


@functools.cache
def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class Clients:
    """One httpx client (one keep-alive connection) per request in flight.

    A single AsyncClient shared by 64 concurrent requests spent 7-8 ms of CPU per request in its
    connection pool against 0.7 ms for a client each (/embed, this 2-core machine): the load
    generator must not eat the cores of the server it measures. They share one TLS context:
    building one per client (httpx's default, loading the CA bundle) took 19 ms of CPU each,
    1.2 s at the start of every 64-client level.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._idle: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []

    def take(self) -> httpx.AsyncClient:
        if self._idle:
            return self._idle.pop()
        # trust_env=False: a proxy from the environment must never sit between client and server.
        client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), trust_env=False, verify=tls_context())
        self._all.append(client)
        return client

    def give_back(self, client: httpx.AsyncClient) -> None:
        self._idle.append(client)

    async def close(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._all))


Job = Callable[[httpx.AsyncClient], Awaitable[Any]]


async def server_info(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        response = await client.get(url + "/info")
        response.raise_for_status()
        info: dict[str, Any] = response.json()
        return info


async def stream_one(client: httpx.AsyncClient, url: str, prompt: str, max_new_tokens: int,
                     truncate: int | None) -> GenRecord:
    """One /generate_stream request, timing each `data:` event as it arrives."""
    parameters: dict[str, Any] = {"max_new_tokens": max_new_tokens, "ignore_eos": True}
    if truncate is not None:
        parameters["truncate"] = truncate
    record = GenRecord(start=time.perf_counter())
    try:
        async with client.stream("POST", url + "/generate_stream",
                                 json={"inputs": prompt, "parameters": parameters}) as response:
            if response.status_code != 200:
                await response.aread()
                record.error = f"HTTP {response.status_code}: {response.text[:200]}"
                return record
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators and keep-alive comments
                now = time.perf_counter()
                # Token events carry "details":null until the last; skipping their JSON parse keeps
                # the client light (it shares the CPU with the server). Inside a JSON string the
                # quotes would be escaped, so token text cannot fake this marker.
                if '"details":null' in line:
                    record.token_times.append(now)
                    continue
                event = json.loads(line[5:])
                if "error" in event:
                    record.error = str(event["error"])
                    return record
                record.token_times.append(now)
                details = event.get("details")
                if details:
                    record.input_tokens = int(details["input_length"])
    except httpx.HTTPError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    return record


async def embed_one(client: httpx.AsyncClient, url: str, texts: list[str], keep: bool) -> EmbedRecord:
    start = time.perf_counter()
    try:
        body = {"inputs": texts, "normalize": True, "truncate": True}
        response = await client.post(url + "/embed", json=body)
        end = time.perf_counter()
        if response.status_code != 200:
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            return EmbedRecord(start, end, len(texts), error=error)
        return EmbedRecord(start, end, len(texts), response.json() if keep else None)
    except httpx.HTTPError as exc:
        return EmbedRecord(start, time.perf_counter(), len(texts), error=f"{type(exc).__name__}: {exc}")


async def drive(level: Level, jobs: Sequence[Job], seed: int, progress: tqdm[Any] | None,
                timeout_s: float = 600.0) -> list[Any]:
    """Run the jobs under the level's load pattern, each on a client of its own; results in job order."""
    results: list[Any] = [None] * len(jobs)
    clients = Clients(timeout_s)

    async def run(i: int) -> None:
        client = clients.take()
        try:
            results[i] = await jobs[i](client)
        finally:
            clients.give_back(client)
        if progress is not None:
            progress.update(1)

    try:
        await _pace(level, len(jobs), run, seed)
    finally:
        await clients.close()
    return results


async def _pace(level: Level, n: int, run: Callable[[int], Awaitable[None]], seed: int) -> None:
    """Start run(0) ... run(n - 1) as the level says: a closed loop of workers, or Poisson arrivals."""
    if level.rate is None:
        pending = iter(range(n))
        workers = min(level.concurrency or 1, n)

        async def worker(k: int) -> None:
            await asyncio.sleep(k * level.ramp_up_s / workers)
            for i in pending:  # one shared iterator: each job is taken by exactly one worker
                await run(i)

        await asyncio.gather(*(worker(k) for k in range(workers)))
        return
    rng = random.Random(seed)
    cap = asyncio.Semaphore(level.concurrency) if level.concurrency else None

    async def capped(i: int) -> None:
        if cap is None:
            await run(i)
            return
        async with cap:
            await run(i)

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(capped(i)))
        await asyncio.sleep(rng.expovariate(level.rate))
    await asyncio.gather(*tasks)


async def generate_level(url: str, prompts: Sequence[str], level: Level, max_new_tokens: int,
                         truncate: int | None, seed: int = 0, show_progress: bool = True,
                         timeout_s: float = 600.0) -> dict[str, Any]:
    """One run of one level over `prompts`: the summary of its requests."""
    jobs = [lambda client, p=p: stream_one(client, url, p, max_new_tokens, truncate) for p in prompts]
    with tqdm(total=len(jobs), desc=f"generate {level.name}", disable=not show_progress, leave=False) as bar:
        began = time.perf_counter()
        records: list[GenRecord] = await drive(level, jobs, seed, bar, timeout_s)
        duration = time.perf_counter() - began
    summary = summarize_generation(records, duration, max_new_tokens)
    if level.ramp_up_s:
        # The steady state: requests sent once every worker has started.
        workers = min(level.concurrency or 1, len(records))
        steady_from = began + level.ramp_up_s * (workers - 1) / workers
        summary["steady"] = latencies([r for r in records if r.ok and r.start >= steady_from])
        summary["ramp_up_s"] = level.ramp_up_s
    return summary


async def embed_level(url: str, sentences: Sequence[str], level: Level, per_request: int = 1, seed: int = 0,
                      show_progress: bool = True, keep_vectors: bool = False,
                      timeout_s: float = 600.0) -> dict[str, Any]:
    """One run of /embed: `per_request` sentences per call; vectors kept in order when asked."""
    groups = [list(sentences[i:i + per_request]) for i in range(0, len(sentences), per_request)]
    jobs = [lambda client, g=g: embed_one(client, url, g, keep_vectors) for g in groups]
    with tqdm(total=len(jobs), desc=f"embed {level.name}", disable=not show_progress, leave=False) as bar:
        began = time.perf_counter()
        records: list[EmbedRecord] = await drive(level, jobs, seed, bar, timeout_s)
        duration = time.perf_counter() - began
    summary = summarize_embedding(records, duration)
    if keep_vectors:
        summary["vectors"] = [v for r in records for v in (r.vectors or [])]
    return summary


def _ms(values: Sequence[float], points: Sequence[int]) -> dict[str, float]:
    out = {f"p{q}": percentile(values, q) * 1000 for q in points}
    out["mean"] = (sum(values) / len(values) * 1000) if values else float("nan")
    return out


def latencies(ok: Sequence[GenRecord]) -> dict[str, Any]:
    """TTFT, inter-token and end-to-end latency percentiles of successful requests."""
    ttft = [r.token_times[0] - r.start for r in ok]
    e2e = [r.token_times[-1] - r.start for r in ok]
    itl = [b - a for r in ok for a, b in zip(r.token_times, r.token_times[1:], strict=False)]
    return {"requests": len(ok), "ttft_ms": _ms(ttft, (50, 90, 99)), "itl_ms": _ms(itl, (50, 90, 99)),
            "e2e_ms": _ms(e2e, (50, 90, 99))}


def summarize_generation(records: Sequence[GenRecord], duration: float,
                         max_new_tokens: int) -> dict[str, Any]:
    ok = [r for r in records if r.ok]
    out_tokens = sum(len(r.token_times) for r in ok)
    in_tokens = sum(r.input_tokens for r in ok)
    # Key positions each generated token attends over (for attention FLOPs): token j of a
    # request with a p-token prompt sees p + j keys.
    n_ctx = sum(len(r.token_times) * r.input_tokens + len(r.token_times) * (len(r.token_times) - 1) // 2
                for r in ok)
    prefill_ctx = sum(r.input_tokens * (r.input_tokens + 1) // 2 for r in ok)
    errors = [r.error or "no tokens" for r in records if not r.ok]
    return {
        "requests": len(records), "ok": len(ok), "errors": len(errors), "error_examples": errors[:3],
        "short_streams": sum(1 for r in ok if len(r.token_times) != max_new_tokens),
        "duration_s": duration, "requests_per_s": len(ok) / duration if duration else float("nan"),
        "output_tokens": out_tokens, "input_tokens": in_tokens,
        "output_tokens_per_s": out_tokens / duration if duration else float("nan"),
        "output_context_sum": n_ctx, "prefill_context_sum": prefill_ctx,
        **{k: v for k, v in latencies(ok).items() if k != "requests"},
    }


def summarize_embedding(records: Sequence[EmbedRecord], duration: float) -> dict[str, Any]:
    ok = [r for r in records if r.error is None]
    latency = [r.end - r.start for r in ok]
    sentences = sum(r.sentences for r in ok)
    errors = [r.error for r in records if r.error is not None]
    return {
        "requests": len(records), "ok": len(ok), "errors": len(errors), "error_examples": errors[:3],
        "duration_s": duration, "sentences": sentences,
        "sentences_per_s": sentences / duration if duration else float("nan"),
        "requests_per_s": len(ok) / duration if duration else float("nan"),
        "latency_ms": _ms(latency, (50, 90, 99)),
    }


def combine_runs(runs: Sequence[dict[str, Any]], main: str) -> dict[str, Any]:
    """Repeats of one level: the run with the median `main` figure, plus the spread of `main`."""
    ordered = sorted(runs, key=lambda r: float(r[main]))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen[main + "_spread"] = spread([float(r[main]) for r in runs])
    chosen["repeats"] = len(runs)
    chosen.pop("vectors", None)
    return chosen
