"""`python -m bench.serve`: HTTP load against a running attnserve (or one it launches itself).

    python -m bench.serve --launch --model DIR --threads 2 --concurrency 1,4,16,64 --max-new-tokens 64
    python -m bench.serve --url http://127.0.0.1:8000 --request-rate 1,2,4
    python -m bench.serve --launch --model ENCODER_DIR --endpoint embed --concurrency 1,16,64

Writes serve.json, serve.md and serve.png (throughput and TTFT against load) into --out.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from . import DEFAULT_OUT
from .launch import LaunchedServer, ServerSpec
from .loadgen import Level, combine_runs, embed_level, generate_level, server_info
from .prompts import draw_prompts, draw_sentences, load_corpus
from .report import chart, embedding_table, emit, generation_table, steady_table, write_json


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def float_list(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def requests_for(level: Level, num_requests: int | None, rounds: int, min_requests: int) -> int:
    """Requests per level: enough that every concurrent slot is refilled `rounds` times."""
    if num_requests is not None:
        return num_requests
    if level.rate is not None:
        return max(min_requests, 32)
    return max(min_requests, rounds * (level.concurrency or 1))


def truncate_for(info: dict[str, Any], max_new_tokens: int) -> int:
    """Prompt tokens a request may keep so that prompt + new tokens fit the server's context."""
    return max(1, min(int(info["max_input_tokens"]), int(info["max_total_tokens"]) - max_new_tokens))


async def bench_generation(url: str, prompts: Sequence[str], levels: Sequence[Level], max_new_tokens: int,
                           num_requests: int | None = None, rounds: int = 2, min_requests: int = 4,
                           repeats: int = 1, warmup: int = 2, seed: int = 0,
                           show_progress: bool = True) -> dict[str, dict[str, Any]]:
    """Every level, `repeats` times, over the first N prompts; the median run of each with its spread."""
    info = await server_info(url)
    truncate = truncate_for(info, max_new_tokens)
    if warmup:
        await generate_level(url, prompts[:warmup], Level(concurrency=warmup), min(4, max_new_tokens),
                             truncate, show_progress=False)
    results: dict[str, dict[str, Any]] = {}
    for level in levels:
        n = requests_for(level, num_requests, rounds, min_requests)
        if n > len(prompts):
            raise ValueError(f"{level.name} needs {n} prompts, only {len(prompts)} were drawn")
        runs = [await generate_level(url, prompts[:n], level, max_new_tokens, truncate, seed + r,
                                     show_progress) for r in range(repeats)]
        results[level.name] = {"concurrency": level.concurrency, "rate": level.rate, "x": level.x,
                               **combine_runs(runs, "output_tokens_per_s")}
    return results


async def bench_embedding(url: str, sentences: Sequence[str], levels: Sequence[Level], per_request: int = 1,
                          repeats: int = 1, warmup: int = 2, seed: int = 0, show_progress: bool = True,
                          keep_vectors: bool = False) -> dict[str, dict[str, Any]]:
    """/embed at each level over all `sentences`; with keep_vectors, the vectors (in sentence order)
    under the last level's "vectors"."""
    if warmup:
        await embed_level(url, sentences[:warmup], Level(concurrency=warmup), show_progress=False)
    results: dict[str, dict[str, Any]] = {}
    for level in levels:
        runs = [await embed_level(url, sentences, level, per_request, seed + r, show_progress)
                for r in range(repeats)]
        results[level.name] = {"concurrency": level.concurrency, "rate": level.rate, "x": level.x,
                               **combine_runs(runs, "sentences_per_s")}
    if keep_vectors and levels:
        # One more pass, not timed: parsing every vector would slow the measured runs' client.
        check = await embed_level(url, sentences, levels[-1], per_request, seed, False, keep_vectors=True)
        results[levels[-1].name]["vectors"] = check["vectors"]
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--url", default="http://127.0.0.1:8000", help="a running attnserve")
    target.add_argument("--launch", action="store_true", help="start `python -m app` on a free port")
    p.add_argument("--model", type=Path, default=None, help="model folder (--launch; default: built-in)")
    p.add_argument("--threads", type=int, default=2, help="server torch threads (--launch)")
    p.add_argument("--device", default="cpu", help="server device (--launch)")
    p.add_argument("--dtype", default="float32", help="server dtype (--launch)")
    p.add_argument("--max-batch-size", type=int, default=64, help="server --max-batch-size (--launch)")
    p.add_argument("--max-total-tokens", type=int, default=None, help="server --max-total-tokens (--launch)")
    p.add_argument("--server-arg", action="append", default=[], help="extra server flag (repeatable)")
    p.add_argument("--endpoint", choices=["generate", "embed", "both"], default="generate")
    p.add_argument("--concurrency", type=int_list, default=[1, 4, 16, 64], help="comma-separated levels")
    p.add_argument("--request-rate", type=float_list, default=None,
                   help="Poisson request rates (req/s) instead of fixed concurrency levels")
    p.add_argument("--max-concurrency", type=int, default=None, help="cap on in-flight requests at a rate")
    p.add_argument("--ramp-up", type=float, default=0.0,
                   help="seconds over which a level's clients start one by one (latencies also for the steady state)")
    p.add_argument("--num-requests", type=int, default=None, help="requests per level (default: rounds x c)")
    p.add_argument("--rounds", type=int, default=2, help="requests per level = rounds x concurrency")
    p.add_argument("--min-requests", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--prompt-words", type=int_list, default=[8, 96], help="min,max words per prompt")
    p.add_argument("--num-sentences", type=int, default=256, help="/embed sentences per level")
    p.add_argument("--embed-batch", type=int, default=1, help="sentences per /embed request")
    p.add_argument("--corpus", type=Path, default=None, help="text to draw prompts from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="runs per level (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up requests before the levels")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--name", default="serve", help="output file stem")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def levels_from(args: argparse.Namespace) -> list[Level]:
    if args.request_rate:
        return [Level(concurrency=args.max_concurrency, rate=r) for r in args.request_rate]
    return [Level(concurrency=c, ramp_up_s=args.ramp_up) for c in args.concurrency]


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    levels = levels_from(args)
    corpus = load_corpus(args.corpus)
    info = await server_info(url)
    result: dict[str, Any] = {"url": url, "server": info, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                              "args": {k: str(v) for k, v in vars(args).items()}}
    progress = not args.no_progress
    if args.endpoint == "generate" and not info.get("can_generate"):
        raise SystemExit(f"{info.get('model_id')} cannot generate (an encoder): use --endpoint embed")
    if args.endpoint in ("generate", "both") and info.get("can_generate"):
        most = max(requests_for(level, args.num_requests, args.rounds, args.min_requests) for level in levels)
        prompts = draw_prompts(corpus, max(most, args.warmup), args.seed, *args.prompt_words)
        result["generate"] = await bench_generation(
            url, prompts, levels, args.max_new_tokens, args.num_requests, args.rounds, args.min_requests,
            args.repeats, args.warmup, args.seed, progress)
    if args.endpoint in ("embed", "both"):
        sentences = draw_sentences(corpus, args.num_sentences, args.seed)
        result["embed"] = await bench_embedding(url, sentences, levels, args.embed_batch, args.repeats,
                                                args.warmup, args.seed, progress)
    return result


def write_outputs(result: dict[str, Any], out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.json", out / f"{name}.md"]
    write_json(written[0], result)
    model = result["server"].get("model_id", "?")
    parts = [f"# attnserve load test: {model}", "", f"{result['date']}, {result['url']}", ""]
    if "generate" in result:
        parts += ["## /generate_stream", "", generation_table(result["generate"]), ""]
        if any("steady" in r for r in result["generate"].values()):
            parts += ["Steady state (requests sent once every client had started):", "",
                      steady_table(result["generate"]), ""]
        levels = result["generate"].values()
        xlabel = "requests/s" if any(r["rate"] for r in levels) else "concurrent requests"
        panels = [("output tokens/s", {"attnserve": [(r["x"], r["output_tokens_per_s"]) for r in levels]}),
                  ("TTFT (ms)", {"p50": [(r["x"], r["ttft_ms"]["p50"]) for r in levels],
                                 "p99": [(r["x"], r["ttft_ms"]["p99"]) for r in levels]})]
        if chart(out / f"{name}.png", f"/generate_stream: {model}", panels, xlabel):
            written.append(out / f"{name}.png")
    if "embed" in result:
        parts += ["## /embed", "", embedding_table(result["embed"]), ""]
        levels = result["embed"].values()
        panels = [("sentences/s", {"attnserve": [(r["x"], r["sentences_per_s"]) for r in levels]}),
                  ("latency (ms)", {"p50": [(r["x"], r["latency_ms"]["p50"]) for r in levels],
                                    "p99": [(r["x"], r["latency_ms"]["p99"]) for r in levels]})]
        if chart(out / f"{name}_embed.png", f"/embed: {model}", panels):
            written.append(out / f"{name}_embed.png")
    written[1].write_text("\n".join(parts))
    return written


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    server: AbstractContextManager[Any] = nullcontext()
    if args.launch:
        spec = ServerSpec(args.model, args.threads, args.device, args.dtype, args.max_batch_size,
                          args.max_total_tokens, list(args.server_arg))
        server = LaunchedServer(spec, args.out / f"{args.name}_server.log")
    with server as launched:
        url = launched.url if launched is not None else args.url
        result = asyncio.run(run(args, url))
    written = write_outputs(result, args.out, args.name)
    emit((args.out / f"{args.name}.md").read_text())
    emit("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
