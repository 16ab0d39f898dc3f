"""`python -m bench.run`: the whole benchmark in one run, with the issue's targets marked last.

    python -m bench.run --suite cpu             # full: about 15-20 minutes on 2 cores
    python -m bench.run --suite cpu --quick     # under 3 minutes (models built beforehand)
    python -m bench.run --suite smoke           # tiny models: checks that every part runs
    bench/gpu.sh                                # --suite gpu: CUDA, bf16

In order, one thing at a time (on 2 cores anything alongside would distort the figures):
the hardware ceiling; GPT-2-small (transformers generate one at a time and in padded batches,
the bf16 logits check, the engine in-process with its per-step overhead, then the server over
HTTP in fp32 and bf16); the default model (the same, transformers on a GPT-2 of its size);
the encoder (sentence-transformers encode, then /embed with a cosine check of the vectors).
Writes results.json, results.md and charts into --out, and prints the targets table last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from model import ModelConfig
from model import hf as hf_convert

from . import DEFAULT_OUT, baselines, hardware
from .launch import LaunchedServer, ServerSpec
from .loadgen import Level
from .models import ModelSet, build_all
from .prompts import draw_prompts, draw_sentences, load_corpus
from .report import emit
from .results import write_report
from .serve import bench_embedding, bench_generation, requests_for
from .suites import SUITES, Suite
from .targets import evaluate, targets_table

T = TypeVar("T")
SUFFIX = {"float32": "", "bfloat16": "_bf16", "float16": "_fp16"}


def model_config(folder: Path) -> ModelConfig:
    """The attnserve ModelConfig of a model folder (ours, GPT-2 or BERT), without loading weights."""
    raw = json.loads((folder / "config.json").read_text())
    if raw.get("model_type") == "gpt2":
        return hf_convert.gpt2_config(raw)
    if raw.get("model_type") == "bert":
        return hf_convert.bert_config(raw, folder)
    return ModelConfig.from_dict({k: v for k, v in raw.items() if k in ModelConfig.__dataclass_fields__})


@dataclass
class Run:
    """What every part of the run shares: the suite, where to write, the clock and the inputs."""

    suite: Suite
    out: Path
    corpus: str
    seed: int
    progress: bool
    skip: set[str]
    hardware: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        emit(f"[{time.monotonic() - self.started:6.0f} s] {message}")

    @property
    def device(self) -> torch.device:
        return torch.device(self.suite.device)

    def peak(self, dtype: str) -> float | None:
        key = "matmul_fp32" if dtype == "float32" else "matmul_bf16"
        return self.hardware[key]["median"] if key in self.hardware else None

    def attempt(self, what: str, results: dict[str, Any], fn: Callable[[], T]) -> T | None:
        """Run one baseline; a missing optional package skips it (and says so) instead of failing."""
        try:
            return fn()
        except ImportError as exc:
            self.log(f"skipped {what}: {exc}")
            results.setdefault("skipped", {})[what] = str(exc)
            return None

    def spec(self, model: Path | None, dtype: str) -> ServerSpec:
        s = self.suite
        return ServerSpec(model, s.threads, s.device, dtype, s.max_batch_size, s.max_total_tokens)


RAMPED = 32  # target 5 reads this level's steady-state latencies (smaller suites ramp their top level)
RAMPED_ROUNDS = 4


def ramped_level(levels: Sequence[int]) -> int | None:
    """The concurrency run again with ramped-up clients: 32, or a smaller suite's top level."""
    top = max((c for c in levels if c <= RAMPED), default=None)
    return top if top is not None and top > 1 else None


def serve_generation(run: Run, spec: ServerSpec, prompts: Sequence[str], levels: Sequence[int],
                     log_name: str, ramped: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each level with every client starting at once. With `ramped`, the 32-stream level again into it,
    its clients ramped up over one request's duration at that load (its E2E p50 just measured)."""
    s = run.suite
    with LaunchedServer(spec, run.out / "logs" / f"{log_name}.log") as server:
        results = asyncio.run(bench_generation(
            server.url, prompts, [Level(c) for c in levels], s.max_new_tokens, None, s.rounds, s.min_requests,
            s.repeats, warmup=2, seed=run.seed, show_progress=run.progress))
        top = ramped_level(levels)
        if ramped is not None and top is not None:
            level = Level(top, ramp_up_s=results[f"c={top}"]["e2e_ms"]["p50"] / 1000)
            ramped.update(asyncio.run(bench_generation(
                server.url, prompts, [level], s.max_new_tokens, None, RAMPED_ROUNDS, s.min_requests, 1, warmup=0,
                seed=run.seed, show_progress=run.progress)))
        return results


def serve_embedding(run: Run, spec: ServerSpec, sentences: Sequence[str], levels: Sequence[int],
                    log_name: str) -> dict[str, Any]:
    with LaunchedServer(spec, run.out / "logs" / f"{log_name}.log") as server:
        return asyncio.run(bench_embedding(server.url, sentences, [Level(c) for c in levels], 1,
                                           run.suite.repeats, seed=run.seed, show_progress=run.progress,
                                           keep_vectors=True))


def add_utilisation(run: Run, cfg: ModelConfig, levels: dict[str, Any], dtype: str) -> None:
    peak = run.peak(dtype)
    if peak:
        for level in levels.values():
            level["mfu"] = hardware.utilisation(cfg, level, peak)


@dataclass
class Workload:
    """One decoder's requests: the prompts, their ids as the server keeps them, requests per level."""

    prompts: list[str]
    ids: list[list[int]]
    levels: list[Level]
    counts: list[int]
    batch_n: int  # prompts in transformers' padded batches: those of the 32-stream level
    keep: int  # prompt tokens kept (the server's `truncate`): prompt + new tokens fit the context


def workload(run: Run, folder: Path, cfg: ModelConfig, levels: Sequence[int]) -> Workload:
    s = run.suite
    keep = min(cfg.max_seq_len, s.max_total_tokens) - s.max_new_tokens
    lvls = [Level(c) for c in levels]
    counts = [requests_for(level, None, s.rounds, s.min_requests) for level in lvls]
    batch_n = counts[list(levels).index(32)] if 32 in levels else s.hf_batch_size
    n = max([*counts, batch_n, s.hf_single_requests, RAMPED_ROUNDS * (ramped_level(levels) or 0)])
    prompts = draw_prompts(run.corpus, n, run.seed, *s.prompt_words)
    return Workload(prompts, baselines.prompt_token_ids(folder, prompts, keep), lvls, counts, batch_n, keep)


def hf_baselines(run: Run, result: dict[str, Any], work: Workload, hf_folder: Path, prefix: str,
                 batch: bool) -> None:
    """transformers generate: one request at a time, and (batch) left-padded static batches."""
    s = run.suite
    dtype = getattr(torch, s.primary)
    ids = baselines.prompt_token_ids(hf_folder, work.prompts, work.keep)
    run.log(f"{hf_folder.name}: transformers generate, one request at a time ({s.primary})")
    single = run.attempt("transformers", result, lambda: baselines.hf_generate(
        hf_folder, ids[:s.hf_single_requests], s.max_new_tokens, 1, s.repeats, run.device, dtype))
    if single is None:
        return
    result[prefix + "_single" + SUFFIX[s.primary]] = single
    if batch:
        run.log(f"{hf_folder.name}: transformers generate, left-padded batches of {s.hf_batch_size}")
        result[prefix + "_batch" + SUFFIX[s.primary]] = baselines.hf_generate(
            hf_folder, ids[:work.batch_n], s.max_new_tokens, s.hf_batch_size, s.repeats, run.device, dtype)


def engine_in_process(run: Run, result: dict[str, Any], work: Workload, served: Path | None,
                      overhead: bool) -> None:
    """Engine.step driven directly at every level; the per-step overhead at one stream."""
    s = run.suite
    run.log(f"engine in-process ({s.primary}), levels {[lv.name for lv in work.levels]}")
    engine = baselines.make_engine(served, s.device, s.primary, s.threads, s.max_batch_size,
                                   s.max_total_tokens)
    result["engine" + SUFFIX[s.primary]] = baselines.engine_levels(engine, work.ids, work.levels, work.counts,
                                                                    s.max_new_tokens, s.repeats)
    if overhead:
        measured = baselines.decode_overhead(engine, work.ids[0], s.overhead_steps, s.repeats)
        result["engine_overhead"] = {"dtype": s.primary, **measured}
    del engine
    baselines.free_memory(run.device)


def over_http(run: Run, result: dict[str, Any], work: Workload, served: Path | None, name: str) -> None:
    """The server in its own process: every level in the primary dtype, a few in the secondary."""
    s = run.suite
    levels = [lv.concurrency or 1 for lv in work.levels]
    runs = [(s.primary, levels)]
    if s.secondary and "bf16" not in run.skip:
        runs.append((s.secondary, [c for c in s.secondary_levels if c in levels] or [levels[-1]]))
    for dtype, chosen in runs:
        run.log(f"{name}: HTTP /generate_stream ({dtype}), levels {chosen}")
        ramped = result.setdefault("http_ramped", {}) if dtype == s.primary else None
        result["http" + SUFFIX[dtype]] = serve_generation(run, run.spec(served, dtype), work.prompts, chosen,
                                                          f"{name}-{dtype}", ramped)


def bench_decoder(run: Run, folder: Path, served: Path | None, levels: Sequence[int], hf_folder: Path | None,
                  hf_prefix: str, hf_batch: bool) -> dict[str, Any]:
    """One generation model: transformers, the engine in-process, then the server over HTTP.

    `served` is what the server is given (None: its built-in default model).
    """
    s = run.suite
    cfg = model_config(folder)
    work = workload(run, folder, cfg, levels)
    result: dict[str, Any] = {
        "folder": str(folder), "config": cfg.to_dict(), "keep_prompt_tokens": work.keep,
        "matmul_params": hardware.matmul_params(cfg),
        "requests": {lv.name: n for lv, n in zip(work.levels, work.counts, strict=True)}}
    if "copy" in run.hardware:  # batch 1 cannot beat reading every weight once per token
        result["bandwidth_floor_ms_per_token"] = {
            dt: 1000 * hardware.weight_bytes(cfg, getattr(torch, dt)) / run.hardware["copy"]["median"]
            for dt in ("float32", "bfloat16")}
    if hf_folder is not None and "hf" not in run.skip and baselines.is_hf_gpt2(hf_folder):
        hf_baselines(run, result, work, hf_folder, hf_prefix, hf_batch)
    if "bf16" not in run.skip:
        result["bf16_logits"] = baselines.bf16_logits_check(folder, work.ids[:4], run.device)
    engine_in_process(run, result, work, served, overhead=True)
    over_http(run, result, work, served, folder.name)
    for dtype in filter(None, (s.primary, s.secondary)):
        for kind in ("http", "engine"):
            if kind + SUFFIX[dtype] in result:
                add_utilisation(run, cfg, result[kind + SUFFIX[dtype]], dtype)
    return result


def encode_baselines(run: Run, result: dict[str, Any], folder: Path,
                     sentences: list[str]) -> dict[str, list[list[float]]]:
    """sentence-transformers encode (fp32, the targets' baseline; also bf16 on CUDA); its vectors."""
    s = run.suite
    reference: dict[str, list[list[float]]] = {}
    for dtype in ["float32"] + (["bfloat16"] if s.device == "cuda" else []):
        run.log(f"{folder.name}: sentence-transformers encode(batch_size={s.st_batch_size}) ({dtype})")
        encode = partial(baselines.sentence_transformers_encode, folder, sentences, s.st_batch_size, s.repeats,
                         run.device, getattr(torch, dtype))
        st = run.attempt("sentence-transformers", result, encode)
        if st is None:
            break
        reference[dtype] = st.pop("vectors")
        result["st" + SUFFIX[dtype]] = st
    return reference


def bench_encoder(run: Run, folder: Path) -> dict[str, Any]:
    """sentence-transformers encode, then /embed at each level with the vectors compared."""
    s = run.suite
    sentences = draw_sentences(run.corpus, s.num_sentences, run.seed)
    result: dict[str, Any] = {"folder": str(folder), "sentences": len(sentences)}
    reference = encode_baselines(run, result, folder, sentences) if "st" not in run.skip else {}
    runs = [(s.primary, s.embed_levels)]
    if s.secondary and "bf16" not in run.skip:
        runs.append((s.secondary, (max(s.embed_levels),)))
    for dtype, levels in runs:
        run.log(f"{folder.name}: HTTP /embed ({dtype}), levels {list(levels)}")
        http = serve_embedding(run, run.spec(folder, dtype), sentences, levels, f"{folder.name}-{dtype}")
        found = [level.pop("vectors") for level in http.values() if "vectors" in level]
        vectors = found[-1] if found else None
        result["http" + SUFFIX[dtype]] = http
        if vectors is not None and "float32" in reference:
            result["cosine" + SUFFIX[dtype]] = baselines.cosine_stats(vectors, reference["float32"])
    return result


def run_suite(run: Run, models: ModelSet) -> dict[str, Any]:
    s = run.suite
    results: dict[str, Any] = {
        "suite": s.name, "settings": vars(s), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": "python -m bench.run " + shlex.join(sys.argv[1:]),
        "models": {k: str(v) for k, v in vars(models).items()}}
    if "hardware" not in run.skip:
        run.log("hardware: matmul FLOP/s (fp32, bf16) and copy bandwidth")
        run.hardware = hardware.measure(run.device, s.threads, s.hardware_quick)
    results["hardware"] = run.hardware
    served = None if models.default_is_builtin else models.default  # None: the server's built-in model

    def gpt2() -> dict[str, Any]:
        return bench_decoder(run, models.gpt2, models.gpt2, s.levels, models.gpt2, "hf", True)

    def default() -> dict[str, Any]:
        return {"builtin": models.default_is_builtin, **bench_decoder(
            run, models.default, served, s.default_levels, models.gpt2_default_size, "hf_same_size", False)}

    def encoder() -> dict[str, Any]:
        return bench_encoder(run, models.encoder)

    parts: list[tuple[str, Callable[[], dict[str, Any]]]] = [("gpt2", gpt2), ("default", default),
                                                              ("encoder", encoder)]
    for name, part in parts:
        if name in run.skip:
            continue
        results[name] = part()
        results["targets"] = [vars(t) for t in evaluate(results, SUFFIX[s.primary])]
        write_report(results, run.out)  # after each part: a run cut short still leaves its figures
    results["targets"] = [vars(t) for t in evaluate(results, SUFFIX[s.primary])]
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=sorted(SUITES), default="cpu")
    p.add_argument("--quick", action="store_true", help="the suite's quick variant (cpu: under 3 minutes)")
    p.add_argument("--threads", type=int, default=None, help="torch threads, server and baselines alike")
    p.add_argument("--repeats", type=int, default=None, help="override the suite's repeats")
    p.add_argument("--out", type=Path, default=None, help="results folder (default bench/out/<suite>)")
    p.add_argument("--models-dir", type=Path, default=DEFAULT_OUT / "models", help="cache of built models")
    p.add_argument("--corpus", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", default="", help="comma-separated: hardware,gpt2,default,encoder,hf,st,bf16")
    p.add_argument("--standin-default", action="store_true",
                   help="use the random stand-in even if model/default exists")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def suite_from(args: argparse.Namespace) -> Suite:
    name = args.suite + "-quick" if args.quick and args.suite + "-quick" in SUITES else args.suite
    suite = SUITES[name]
    if args.threads is not None:
        suite = suite.replace(threads=args.threads)
    if args.repeats is not None:
        suite = suite.replace(repeats=args.repeats)
    return suite


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    suite = suite_from(args)
    out = args.out or DEFAULT_OUT / suite.name
    torch.set_num_threads(suite.threads)  # the in-process baselines get what the server gets
    run = Run(suite, out, load_corpus(args.corpus), args.seed, not args.no_progress,
              {x.strip() for x in args.skip.split(",") if x.strip()})
    run.log(f"suite {suite.name}: {suite.device}, {suite.primary}, {suite.threads} threads; building models "
            f"in {args.models_dir}")
    models = build_all(args.models_dir, args.corpus, suite.scale,
                       use_builtin_default=not args.standin_default)
    if not models.default_is_builtin:
        run.log(f"default model: model/default is not there; using the random stand-in {models.default}")
    results = run_suite(run, models)
    written = write_report(results, out)
    run.log("wrote " + ", ".join(str(p) for p in written))
    emit()
    emit(f"## Targets ({suite.name}, {suite.device}; each against its baseline in this run)")
    if suite.primary != "float32":
        emit(f"(the CPU targets' comparisons, made with both sides in {suite.primary})")
    emit(targets_table(evaluate(results, SUFFIX[suite.primary])))


if __name__ == "__main__":
    main()
