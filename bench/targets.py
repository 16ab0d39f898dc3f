"""The issue's speed targets 1-7, each judged against the baseline timed in the same run.

A target whose figures are missing (a skipped baseline, a level that was not run) is "n/a",
never "met".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .report import fmt, table
from .stats import ratio


@dataclass(frozen=True)
class Target:
    number: str
    what: str
    measured: str  # the figure and the baseline it is compared with
    value: float  # the ratio or figure that is judged
    needed: str
    met: bool | None  # None: a figure is missing


def get(data: Any, *path: str) -> float:
    """A number deep in the results, NaN where any key is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return math.nan
        data = data[key]
    return float(data) if isinstance(data, int | float) else math.nan


def _target(number: str, what: str, measured: str, value: float, needed: str, ok: bool,
            inputs: tuple[float, ...]) -> Target:
    missing = any(math.isnan(x) for x in (value, *inputs))
    return Target(number, what, measured, value, needed, None if missing else ok)


def _one_and_batch(g: dict[str, Any], sfx: str) -> list[Target]:
    hf1 = get(g, "hf_single" + sfx, "tokens_per_s", "median")
    hf32 = get(g, "hf_batch" + sfx, "tokens_per_s", "median")
    http1 = get(g, "http" + sfx, "c=1", "output_tokens_per_s")
    http32 = get(g, "http" + sfx, "c=32", "output_tokens_per_s")
    bf32 = get(g, "http_bf16", "c=32", "output_tokens_per_s") if not sfx else math.nan  # bf16 vs fp32
    cos = get(g, "bf16_logits", "cosine_min")
    r1, r2, r2b, r3 = ratio(http1, hf1), ratio(http32, hf32), ratio(bf32, hf32), ratio(http32, http1)
    return [
        _target("1", "GPT-2-small, one stream vs transformers generate (fp32)",
                f"{fmt(http1)} vs {fmt(hf1)} tok/s", r1, ">= 1.5x", r1 >= 1.5, ()),
        _target("2a", "GPT-2-small, 32 mixed-length streams vs a padded batch of 32 (fp32)",
                f"{fmt(http32)} vs {fmt(hf32)} tok/s", r2, ">= 1.5x", r2 >= 1.5, ()),
        _target("2b", "... attnserve in bf16 vs that fp32 batch; bf16 logits vs fp32",
                f"{fmt(bf32)} vs {fmt(hf32)} tok/s; cosine {fmt(cos, 5)}", r2b, ">= 3x, cosine >= 0.999",
                r2b >= 3 and cos >= 0.999, (cos,)),
        _target("3", "32 concurrent streams vs one stream (attnserve)",
                f"{fmt(http32)} vs {fmt(http1)} tok/s (transformers: {fmt(ratio(hf32, hf1))}x)", r3, ">= 10x",
                r3 >= 10, ()),
    ]


def _overhead(d: dict[str, Any], sfx: str) -> Target:
    overhead = get(d, "engine_overhead", "overhead_ms")
    one = get(d, "http" + sfx, "c=1", "output_tokens_per_s")
    hf = get(d, "hf_same_size_single" + sfx, "tokens_per_s", "median")
    r = ratio(one, hf)
    return _target("4", "default model, one stream: engine overhead per decode step; vs transformers",
                   f"{fmt(overhead, 3)} ms/step; {fmt(one)} vs {fmt(hf)} tok/s (GPT-2 of its size)", overhead,
                   "<= 0.5 ms, >= 5x", overhead <= 0.5 and r >= 5, (r,))


def _server_layer(g: dict[str, Any], sfx: str) -> Target:
    http32 = get(g, "http" + sfx, "c=32", "output_tokens_per_s")
    engine32 = get(g, "engine" + sfx, "c=32", "output_tokens_per_s")
    ttft50 = get(g, "http" + sfx, "c=1", "ttft_ms", "p50")
    burst99 = get(g, "http" + sfx, "c=32", "ttft_ms", "p99")
    # TTFT at 32 streams in the steady state (clients ramped up); all 32 arriving at once need every
    # prompt prefilled before the last first token, whatever the scheduler does.
    ttft99 = get(g, "http_ramped", "c=32-ramped", "steady", "ttft_ms", "p99")
    r, spread = ratio(http32, engine32), ratio(ttft99, ttft50)
    return _target("5", "HTTP+SSE+scheduler at 32 streams vs in-process engine; TTFT p99 @32 (steady) / p50 @1",
                   f"{fmt(http32)} vs {fmt(engine32)} tok/s; TTFT {fmt(ttft99)} / {fmt(ttft50)} ms "
                   f"= {fmt(spread)}x (all 32 at once: p99 {fmt(burst99)} ms)", r, ">= 0.90x, <= 4x",
                   r >= 0.9 and spread <= 4, (spread,))


def _embed(e: dict[str, Any]) -> list[Target]:
    st = get(e, "st", "sentences_per_s", "median")
    fp32, bf16 = get(e, "http", "c=64", "sentences_per_s"), get(e, "http_bf16", "c=64", "sentences_per_s")
    cos32, cos16 = get(e, "cosine", "min"), get(e, "cosine_bf16", "min")
    r, rb = ratio(fp32, st), ratio(bf16, st)
    return [
        _target("6a", "/embed at 64 clients vs sentence-transformers encode(batch 32), fp32",
                f"{fmt(fp32)} vs {fmt(st)} sentences/s; cosine {fmt(cos32, 6)}", r,
                ">= 1.0x, cosine >= 0.9999", r >= 1.0 and cos32 >= 0.9999, (cos32,)),
        _target("6b", "... /embed in bf16 vs that fp32 encode",
                f"{fmt(bf16)} vs {fmt(st)} sentences/s; cosine {fmt(cos16, 5)}", rb, ">= 2x, cosine >= 0.999",
                rb >= 2 and cos16 >= 0.999, (cos16,)),
    ]


def _utilisation(g: dict[str, Any], hardware: dict[str, Any], sfx: str) -> Target:
    mfu = get(g, "http" + sfx, "c=32", "mfu", "mfu")
    with_prompts = get(g, "http" + sfx, "c=32", "mfu", "mfu_with_prefill")
    peak_key = "matmul_bf16" if sfx else "matmul_fp32"
    peak = get(hardware, peak_key, "median") / 1e9
    # Judged on the generated tokens' FLOPs alone (the stricter reading); the prompts' are shown.
    return _target("7", f"model FLOPs utilisation at 32 streams (of the measured {peak_key[7:]} matmul peak)",
                   f"{fmt(mfu * 100)}% of {fmt(peak)} GFLOP/s (counting the prompts too: "
                   f"{fmt(with_prompts * 100)}%)", mfu, ">= 40%", mfu >= 0.40, ())


def evaluate(results: dict[str, Any], suffix: str = "") -> list[Target]:
    """The targets on fp32 figures (suffix ""); on a GPU run, suffix "_bf16" makes the same
    comparisons with both sides in bf16 (and 2b, bf16 against fp32, does not apply)."""
    g, d, e = results.get("gpt2", {}), results.get("default", {}), results.get("encoder", {})
    return [*_one_and_batch(g, suffix), _overhead(d, suffix), _server_layer(g, suffix), *_embed(e),
            _utilisation(g, results.get("hardware", {}), suffix)]


def targets_table(targets: list[Target]) -> str:
    rows = [[t.number, t.what, t.measured, fmt(t.value, 2), t.needed,
             "n/a" if t.met is None else ("met" if t.met else "NOT met")] for t in targets]
    return table(["#", "target", "measured (same run)", "value", "needed", "result"], rows)
