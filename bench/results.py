"""The suite's report: results.json, results.md (tables) and one chart per model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .hardware import summary_rows
from .report import Series, chart, embedding_table, generation_table, steady_table, table, write_json
from .targets import Target, targets_table

DTYPE_KEYS = {"": "fp32", "_bf16": "bf16", "_fp16": "fp16"}


def _pct(spread: dict[str, float] | None) -> str:
    if not spread or math.isnan(spread.get("rel_spread", math.nan)):
        return "-"
    return f"±{spread['rel_spread'] * 100:.0f}%"


def _level_rows(model: dict[str, Any]) -> list[list[Any]]:
    """Per load: HTTP throughput in each dtype, the in-process engine's, latencies and utilisation.

    Latencies, utilisation and the HTTP / in-process ratio are those of the primary dtype: the one
    run at every level (fp32 on CPU, bf16 on GPU), which is also the engine's.
    """
    http, bf16 = model.get("http", {}), model.get("http_bf16", {})
    main_levels = max((http, bf16), key=len)
    engine = model.get("engine" if main_levels is http else "engine_bf16") or {}
    rows = []
    for name, main in main_levels.items():
        e = engine.get(name, {})
        etps = e.get("output_tokens_per_s", math.nan)
        rows.append([name, http.get(name, {}).get("output_tokens_per_s"), bf16.get(name, {}).get(
                     "output_tokens_per_s"), etps, main["output_tokens_per_s"] / etps if e else None,
                     e.get("step_ms", {}).get("p50"), main["ttft_ms"]["p50"], main["ttft_ms"]["p99"],
                     main["itl_ms"]["p50"], main["itl_ms"]["p99"],
                     100 * main["mfu"]["mfu"] if "mfu" in main else None])
    return rows


def _baseline_rows(model: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for suffix, label in DTYPE_KEYS.items():
        for key, what in (("hf_single", "transformers generate, one request at a time"),
                          ("hf_same_size_single", "transformers generate, GPT-2 of this size, one at a time"),
                          ("hf_batch", "transformers generate, static left-padded batches")):
            r = model.get(key + suffix)
            if r:
                note = f"{r['requests']} requests x {r['max_new_tokens']} tokens, batch {r['batch_size']}"
                if r["batch_size"] > 1:
                    note += (f"; prefill {r['prefill_s']:.2f} s of {r['seconds']:.2f} s, "
                             f"{100 * r['padding_fraction']:.0f}% padding")
                rows.append([f"{what} ({label})", r["tokens_per_s"]["median"], _pct(r["tokens_per_s"]),
                             note])
    o = model.get("engine_overhead")
    if o:
        rows.append([f"engine overhead per decode step, one stream ({o['dtype']})", None, "-",
                     f"{o['overhead_ms']:.3f} ms: step {o['step_ms']:.3f} ms, "
                     f"model forward {o['forward_ms']:.3f} ms"])
    c = model.get("bf16_logits")
    if c:
        rows.append(["bf16 logits vs fp32", None, "-", f"cosine >= {c['cosine_min']:.5f}, top-1 agreement "
                     f"{100 * c['top1_agreement']:.0f}%, max rel. error {c['max_rel_error']:.3f}"])
    floor = model.get("bandwidth_floor_ms_per_token")
    if floor:
        rows.append(["memory-bandwidth ceiling at batch 1 (fp32)", 1000 / floor["float32"], "-",
                     f"{floor['float32']:.2f} ms/token fp32, {floor['bfloat16']:.2f} bf16 "
                     "(matmul weights / copy bandwidth)"])
    return rows


def decoder_section(title: str, model: dict[str, Any]) -> list[str]:
    header = ["load", "HTTP fp32 tok/s", "HTTP bf16 tok/s", "in-process tok/s", "HTTP / in-process",
              "step ms p50", "TTFT p50 ms", "TTFT p99", "ITL p50 ms", "ITL p99", "MFU %"]
    about = (f"`{model['folder']}`: {model['matmul_params'] / 1e6:.1f}M matmul parameters; "
             f"requests per level {model['requests']}")
    parts = [f"## {title}", "", about, "", table(header, _level_rows(model)), "",
             table(["baseline", "tok/s", "spread", "notes"], _baseline_rows(model)), ""]
    for suffix, label in DTYPE_KEYS.items():
        if "http" + suffix in model:
            parts += [f"HTTP detail ({label}):", "", generation_table(model["http" + suffix]), ""]
    if model.get("http_ramped"):
        parts += ["32 streams again, clients ramped up over one request's duration (all requests, then those "
                  "sent once every client had started):", "", generation_table(model["http_ramped"]), "",
                  steady_table(model["http_ramped"]), ""]
    return parts


def encoder_section(e: dict[str, Any]) -> list[str]:
    parts = ["## Encoder: /embed against sentence-transformers", "",
             f"`{e['folder']}`, {e['sentences']} sentences", ""]
    rows = []
    for suffix, label in DTYPE_KEYS.items():
        st = e.get("st" + suffix)
        if st:
            rows.append([f"sentence-transformers encode(batch_size={st['batch_size']}) ({label})",
                         st["sentences_per_s"]["median"], _pct(st["sentences_per_s"]), ""])
        cos = e.get("cosine" + suffix)
        if cos:
            rows.append([f"/embed {label} vectors vs sentence-transformers fp32", None, "-",
                         f"cosine min {cos['min']:.6f}, mean {cos['mean']:.6f}; between different sentences "
                         f"{cos['between_sentences_mean']:.3f}"])
    parts += [table(["baseline", "sentences/s", "spread", "notes"], rows), ""]
    for suffix, label in DTYPE_KEYS.items():
        if "http" + suffix in e:
            parts += [f"/embed ({label}), one sentence per request:", "",
                      embedding_table(e["http" + suffix]), ""]
    return parts


def decoder_chart(path: Path, title: str, model: dict[str, Any]) -> bool:
    throughput: Series = {}
    for suffix, label in DTYPE_KEYS.items():
        for kind, name in (("http", "attnserve HTTP"), ("engine", "engine in-process")):
            levels = model.get(kind + suffix, {})
            if levels:
                throughput[f"{name} {label}"] = [(r["x"], r["output_tokens_per_s"]) for r in levels.values()]
        hf = [(1.0, model[k + suffix]["tokens_per_s"]["median"])
              for k in ("hf_single", "hf_same_size_single") if k + suffix in model]
        if "hf_batch" + suffix in model:
            hf.append((float(model["hf_batch" + suffix]["batch_size"]),
                       model["hf_batch" + suffix]["tokens_per_s"]["median"]))
        if hf:
            throughput[f"transformers {label}"] = hf
    main = model.get("http") or model.get("http_bf16") or {}
    ttft: Series = {"p50": [(r["x"], r["ttft_ms"]["p50"]) for r in main.values()],
                    "p99": [(r["x"], r["ttft_ms"]["p99"]) for r in main.values()]}
    mfu: Series = {"HTTP": [(r["x"], 100 * r["mfu"]["mfu"]) for r in main.values() if "mfu" in r]}
    return chart(path, title, [("output tokens/s", throughput), ("TTFT (ms)", ttft), ("MFU (%)", mfu)])


def encoder_chart(path: Path, e: dict[str, Any]) -> bool:
    rate: Series = {}
    latency: Series = {}
    for suffix, label in DTYPE_KEYS.items():
        levels = e.get("http" + suffix, {})
        if levels:
            rate[f"/embed {label}"] = [(r["x"], r["sentences_per_s"]) for r in levels.values()]
            latency[f"p50 {label}"] = [(r["x"], r["latency_ms"]["p50"]) for r in levels.values()]
            latency[f"p99 {label}"] = [(r["x"], r["latency_ms"]["p99"]) for r in levels.values()]
        st = e.get("st" + suffix)
        xs = [r["x"] for r in (e.get("http") or e.get("http_bf16") or {}).values()]
        if st and xs:  # encode() has no concurrency: a flat line across the chart
            rate[f"sentence-transformers {label}"] = [(min(xs), st["sentences_per_s"]["median"]),
                                                      (max(xs), st["sentences_per_s"]["median"])]
    return chart(path, "/embed", [("sentences/s", rate), ("latency (ms)", latency)])


def write_report(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.md"]
    write_json(written[0], results)
    hw = results.get("hardware", {})
    parts = [f"# attnserve benchmark: suite {results['suite']}", "", f"- date: {results['date']}",
             f"- command: `{results['command']}`",
             f"- machine: {hw.get('name', '?')}, {hw.get('threads', '?')} torch threads, "
             f"torch {hw.get('torch', '?')}", ""]
    if hw:
        parts += ["## Hardware ceiling", "", table(["", "median", "best"], summary_rows(hw)), ""]
    targets = [Target(**t) for t in results.get("targets", [])]
    parts += ["## Targets", "", targets_table(targets), ""]
    if "gpt2" in results:
        parts += decoder_section("GPT-2-small", results["gpt2"])
        if decoder_chart(out / "gpt2.png", "GPT-2-small", results["gpt2"]):
            written.append(out / "gpt2.png")
    if "default" in results:
        d = results["default"]
        title = "Default model" + ("" if d.get("builtin") else " (a random stand-in: no model/default yet)")
        parts += decoder_section(title, d)
        if decoder_chart(out / "default.png", title, d):
            written.append(out / "default.png")
    if "encoder" in results:
        parts += encoder_section(results["encoder"])
        if encoder_chart(out / "encoder.png", results["encoder"]):
            written.append(out / "encoder.png")
    written[1].write_text("\n".join(parts) + "\n")
    return written
