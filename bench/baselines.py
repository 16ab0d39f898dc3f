"""Baselines, timed in the same run on the same weights as the server.

1. transformers `generate` (what people wrap in a FastAPI endpoint themselves): one request at
   a time, and static left-padded batches of the same prompts. GPT-2 Hugging Face folders only:
   attnserve's own model folders have no transformers class (there, the comparison is made on
   a GPT-2 of the same size, see bench/models.py).
2. attnserve's engine in-process, without HTTP: Engine.step driven directly at the same
   concurrency (admit up to N sequences, step, refill as they finish), and the engine's own
   overhead per decode step against the bare model forward.
3. sentence-transformers `encode(batch_size=32)` for an encoder, with its vectors kept so the
   caller can check /embed's against them (cosine similarity).

Only model calls are timed: tokenisation is done up front, for every side alike.
"""

from __future__ import annotations

import copy
import gc
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from app.engine import Batch, Engine, GenerationRequest
from model import Tokenizer, load_checkpoint
from model import decode as decode_step

from .loadgen import Level, combine_runs
from .stats import median, percentile, spread


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def prompt_token_ids(folder: Path | None, prompts: Sequence[str], keep: int) -> list[list[int]]:
    """Each prompt's ids as the server computes them, truncated to the last `keep` (its `truncate`)."""
    tokenizer = load_checkpoint(folder).tokenizer if folder is None else Tokenizer.from_dir(folder)
    return [tokenizer.encode(p).ids[-keep:] for p in prompts]


def context_sums(prompt_lengths: Sequence[int], new_tokens: int) -> dict[str, int]:
    """Token and attention-context counts for FLOPs, as the load generator reports them."""
    return {
        "input_tokens": sum(prompt_lengths), "output_tokens": new_tokens * len(prompt_lengths),
        "output_context_sum": sum(new_tokens * p for p in prompt_lengths)
        + len(prompt_lengths) * new_tokens * (new_tokens - 1) // 2,
        "prefill_context_sum": sum(p * (p + 1) // 2 for p in prompt_lengths),
    }


# ---- 1. transformers generate -----------------------------------------------------------------

def is_hf_gpt2(folder: Path | None) -> bool:
    import json

    if folder is None or not (folder / "config.json").is_file():
        return False
    return bool(json.loads((folder / "config.json").read_text()).get("model_type") == "gpt2")


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _left_pad(rows: Sequence[Sequence[int]], pad: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def _hf_generate(model: Any, rows: Sequence[Sequence[int]], new_tokens: int, pad: int,
                 device: torch.device) -> tuple[float, int]:
    """Seconds and new tokens of one `generate` call over a left-padded batch."""
    ids, mask = _left_pad(rows, pad, device)
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                             pad_token_id=pad)
    sync(device)
    return time.perf_counter() - start, (out.shape[1] - ids.shape[1]) * len(rows)


def hf_generate(folder: Path, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int,
                repeats: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """transformers' GPT2LMHeadModel.generate, greedy, fixed length (EOS off), in batches of batch_size."""
    _quiet_transformers()
    from transformers import GPT2LMHeadModel

    model: Any = GPT2LMHeadModel.from_pretrained(folder)  # Any: transformers' own typing is partial
    model = model.to(device=device, dtype=dtype).eval()
    model.generation_config.eos_token_id = None  # every sequence runs to max_new_tokens, as ignore_eos
    pad = int(model.config.pad_token_id or 0)
    batches = [list(prompt_ids[i:i + batch_size]) for i in range(0, len(prompt_ids), batch_size)]
    _hf_generate(model, batches[0], 2, pad, device)  # warm-up: first-call allocations and kernels
    runs, seconds = [], []
    for _ in range(repeats):
        results = [_hf_generate(model, rows, max_new_tokens, pad, device) for rows in batches]
        seconds.append(sum(s for s, _ in results))
        runs.append(sum(n for _, n in results) / seconds[-1])
    # Prefill alone (a one-token generate): what left padding costs before decoding starts.
    prefill = median([sum(_hf_generate(model, rows, 1, pad, device)[0] for rows in batches)
                      for _ in range(max(1, repeats // 2))])
    padded = sum(len(rows) * max(len(r) for r in rows) for rows in batches)
    real = sum(len(r) for r in prompt_ids)
    del model
    free_memory(device)
    return {"batch_size": batch_size, "requests": len(prompt_ids), "max_new_tokens": max_new_tokens,
            "dtype": str(dtype).removeprefix("torch."), "tokens_per_s": spread(runs), "runs": runs,
            "seconds": median(seconds), "prefill_s": prefill, "padding_fraction": 1 - real / padded,
            "ms_per_step": 1000 * median(seconds) / max_new_tokens / len(batches)}


# ---- 2. attnserve's engine in-process ---------------------------------------------------------

def make_engine(model: Path | None, device: str, dtype: str, threads: int | None, max_batch_size: int,
                max_total_tokens: int | None) -> Engine:
    """The engine exactly as the server builds it (app.main.build_engine), warmed up."""
    from app.config import Settings
    from app.main import build_engine

    settings = Settings(model=model, device=device, dtype=dtype, torch_threads=threads,
                        max_batch_size=max_batch_size, max_total_tokens=max_total_tokens)
    engine = build_engine(settings)
    engine.warmup()
    return engine


def engine_run(engine: Engine, prompt_ids: Sequence[Sequence[int]], concurrency: int, max_new_tokens: int,
               prefill_budget: int = 1024) -> dict[str, Any]:
    """Continuous batching without the server: keep up to `concurrency` sequences in the batch."""
    pending = deque(GenerationRequest(f"bench-{i}", list(ids), max_new_tokens, ignore_eos=True)
                    for i, ids in enumerate(prompt_ids))
    batch = Batch(prefill_budget=prefill_budget)
    step_s: list[float] = []
    tokens = 0
    start = time.perf_counter()
    while pending or batch.sequences:
        while pending and len(batch) < concurrency and engine.free_slots():
            batch.sequences.append(engine.new_sequence(pending.popleft()))
        began = time.perf_counter()
        outputs, batch = engine.step(batch)
        step_s.append(time.perf_counter() - began)
        tokens += sum(1 for o in outputs if o.token is not None)
    duration = time.perf_counter() - start
    return {"requests": len(prompt_ids), "duration_s": duration, "output_tokens_per_s": tokens / duration,
            "requests_per_s": len(prompt_ids) / duration, "steps": len(step_s),
            "tokens_per_step": tokens / len(step_s), "step_ms": {"p50": 1000 * percentile(step_s, 50),
                                                                 "p90": 1000 * percentile(step_s, 90)},
            **context_sums([len(ids) for ids in prompt_ids], max_new_tokens), "output_tokens": tokens}


def engine_levels(engine: Engine, prompt_ids: Sequence[Sequence[int]], levels: Sequence[Level],
                  requests: Sequence[int], max_new_tokens: int, repeats: int) -> dict[str, dict[str, Any]]:
    """engine_run at each level over its first N prompts (the load generator's N), repeated."""
    results = {}
    for level, n in zip(levels, requests, strict=True):
        runs = [engine_run(engine, prompt_ids[:n], level.concurrency or 1, max_new_tokens)
                for _ in range(repeats)]
        results[level.name] = {"concurrency": level.concurrency, "x": level.x,
                               **combine_runs(runs, "output_tokens_per_s")}
    return results


def decode_overhead(engine: Engine, prompt: Sequence[int], steps: int = 32,
                    repeats: int = 3) -> dict[str, float]:
    """One stream's engine.step against the bare model forward at the same positions.

    The difference is what the engine adds per decode step: building the batch's tensors,
    sampling, the host sync, detokenising and the stop checks. Each step is followed by the bare
    forward of the very same token at the same position (it rewrites identical keys and values),
    so the pair runs under the same machine conditions: timed in separate windows, a drift of the
    shared machine's speed read as up to 1 ms of "overhead" on a 2.5 ms step.
    """
    assert engine.cache is not None, "a decoder's engine has a KV cache"
    prompt = list(prompt)[: max(1, engine.max_total_tokens - steps - 4)]
    step_s: list[float] = []
    forward_s: list[float] = []
    for r in range(repeats):
        seq = engine.new_sequence(GenerationRequest(f"overhead-{r}", prompt, steps + 2, ignore_eos=True))
        _, batch = engine.step(Batch([seq]))  # the prefill
        for _ in range(steps):
            began = time.perf_counter()
            _, batch = engine.step(batch)
            sync(engine.device)
            step_s.append(time.perf_counter() - began)
            # The token this step fed, at the position it was written to; inputs made off the clock.
            token = torch.tensor([seq.generated[-2]], device=engine.device)
            position = torch.tensor([seq.cached_len - 1], device=engine.device)
            with torch.inference_mode():
                began = time.perf_counter()
                decode_step(engine.model, token, position, engine.cache, seq.cached_len, slots=[seq.slot])
                sync(engine.device)
                forward_s.append(time.perf_counter() - began)
        engine.release(seq)
    step_ms, forward_ms = 1000 * median(step_s), 1000 * median(forward_s)
    return {"step_ms": step_ms, "forward_ms": forward_ms, "overhead_ms": step_ms - forward_ms,
            "steps": float(steps * repeats)}


# ---- bf16 against fp32 ------------------------------------------------------------------------

def bf16_logits_check(folder: Path | None, prompt_ids: Sequence[Sequence[int]],
                      device: torch.device) -> dict[str, float]:
    """Last-position logits of the bf16 model (as the server casts it) against fp32, per prompt."""
    model32 = load_checkpoint(folder, device=device, dtype=torch.float32).model
    model16 = copy.deepcopy(model32).to(torch.bfloat16)
    cosines, agree, rel = [], 0, []
    with torch.inference_mode():
        for ids in prompt_ids:
            x = torch.tensor([list(ids)], device=device)
            a = model32.logits(model32(x).hidden[:, -1]).float()
            b = model16.logits(model16(x).hidden[:, -1]).float()
            cosines.append(float(F.cosine_similarity(a, b).item()))
            agree += int(a.argmax() == b.argmax())
            rel.append(float(((a - b).abs().max() / a.abs().max()).item()))
    del model32, model16
    free_memory(device)
    return {"prompts": float(len(prompt_ids)), "cosine_min": min(cosines),
            "top1_agreement": agree / len(prompt_ids), "max_rel_error": max(rel)}


# ---- 3. sentence-transformers -----------------------------------------------------------------

def sentence_transformers_encode(folder: Path, sentences: Sequence[str], batch_size: int, repeats: int,
                                 device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """SentenceTransformer.encode over all sentences, repeated; the last run's vectors (fp32 lists)."""
    _quiet_transformers()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device=str(device))
    model.to(dtype)
    texts = list(sentences)
    model.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)  # warm-up
    runs: list[float] = []
    vectors: torch.Tensor | None = None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        vectors = model.encode(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
        sync(device)
        runs.append(len(texts) / (time.perf_counter() - start))
    assert vectors is not None
    del model
    free_memory(device)
    return {"batch_size": batch_size, "sentences": len(texts), "dtype": str(dtype).removeprefix("torch."),
            "sentences_per_s": spread(runs), "runs": runs, "vectors": vectors.float().cpu().tolist()}


def cosine_stats(got: Sequence[Sequence[float]], expected: Sequence[Sequence[float]]) -> dict[str, float]:
    """Row-by-row cosine similarity of two sets of vectors (the same sentences, in order)."""
    a, b = torch.tensor(got, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"vector sets differ in shape: {tuple(a.shape)} against {tuple(b.shape)}")
    cos = F.cosine_similarity(a, b, dim=1)
    # How alike different sentences are: a check is only meaningful if this is well below 1.
    sample = F.normalize(b[:32], dim=1)
    gram = sample @ sample.T
    off = gram[~torch.eye(len(sample), dtype=torch.bool)]
    return {"min": float(cos.min()), "mean": float(cos.mean()), "n": float(len(cos)),
            "between_sentences_mean": float(off.mean()) if off.numel() else float("nan")}
