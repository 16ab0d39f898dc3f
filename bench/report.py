"""Writing results: JSON, markdown tables and PNG charts (matplotlib, from the `bench` extra)."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def emit(text: str = "") -> None:
    """Print to stdout (the benchmark's report is its output)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str, allow_nan=True) + "\n")


def fmt(value: Any, digits: int | None = None) -> str:
    """A number for a table: '-' when missing, two decimals below 10 (ratios, ms), else one."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        places = digits if digits is not None else (2 if abs(value) < 10 else 1)
        return f"{value:,.{places}f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def generation_table(levels: dict[str, dict[str, Any]]) -> str:
    header = ["load", "requests", "req/s", "out tok/s", "spread", "TTFT p50 ms", "p90", "p99", "ITL p50 ms",
              "p99", "E2E p50 ms", "p99", "errors"]
    rows = []
    for name, r in levels.items():
        spread = r.get("output_tokens_per_s_spread")
        spread_text = f"±{spread['rel_spread'] * 100:.0f}%" if spread and r.get("repeats", 1) > 1 else "-"
        rows.append([name, r["requests"], r["requests_per_s"], r["output_tokens_per_s"], spread_text,
                     r["ttft_ms"]["p50"], r["ttft_ms"]["p90"], r["ttft_ms"]["p99"], r["itl_ms"]["p50"],
                     r["itl_ms"]["p99"], r["e2e_ms"]["p50"], r["e2e_ms"]["p99"], r["errors"]])
    return table(header, rows)


def steady_table(levels: dict[str, dict[str, Any]]) -> str:
    """Latencies of the requests sent once a ramped level's clients had all started."""
    header = ["load", "ramp-up s", "steady requests", "TTFT p50 ms", "p90", "p99", "ITL p50 ms", "p99",
              "E2E p50 ms", "p99"]
    rows = [[name, r["ramp_up_s"], s["requests"], s["ttft_ms"]["p50"], s["ttft_ms"]["p90"], s["ttft_ms"]["p99"],
             s["itl_ms"]["p50"], s["itl_ms"]["p99"], s["e2e_ms"]["p50"], s["e2e_ms"]["p99"]]
            for name, r in levels.items() if (s := r.get("steady"))]
    return table(header, rows)


def embedding_table(levels: dict[str, dict[str, Any]]) -> str:
    header = ["load", "requests", "sentences/s", "spread", "latency p50 ms", "p90", "p99", "errors"]
    rows = []
    for name, r in levels.items():
        spread = r.get("sentences_per_s_spread")
        spread_text = f"±{spread['rel_spread'] * 100:.0f}%" if spread and r.get("repeats", 1) > 1 else "-"
        rows.append([name, r["requests"], r["sentences_per_s"], spread_text, r["latency_ms"]["p50"],
                     r["latency_ms"]["p90"], r["latency_ms"]["p99"], r["errors"]])
    return table(header, rows)


Series = dict[str, list[tuple[float, float]]]  # label -> [(x, y)]


def chart(path: Path, title: str, panels: Sequence[tuple[str, Series]], xlabel: str = "concurrent requests",
          log_x: bool = True) -> bool:
    """Side-by-side line charts, one per (y label, series); False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a server
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed (pip install -e '.[bench]'): no chart %s", path.name)
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (ylabel, series) in zip(axes[0], panels, strict=True):
        for label, points in series.items():
            points = [(x, y) for x, y in points if not math.isnan(y)]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        if log_x:
            ax.set_xscale("log", base=2)
            xs = sorted({x for points in series.values() for x, _ in points})
            ax.set_xticks(xs, [f"{x:g}" for x in xs])  # 1, 4, 16, 32, 64 rather than powers of 2
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
