"""What the deployment files may rely on: the service's HTTP paths, metric names and settings.

These lists restate issue 3 (app/). The deploy tests check every manifest,
dashboard and rule against them; a test against the live app (tests/app)
should check these lists against what the app really serves and exports.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# --- HTTP -------------------------------------------------------------------

HEALTH_PATH = "/health"  # 200 when ready; 503 while loading, draining, or when the engine stalls
LIVE_PATH = "/live"  # the process answers
METRICS_PATH = "/metrics"  # Prometheus exposition

GET_ENDPOINTS = frozenset({HEALTH_PATH, LIVE_PATH, METRICS_PATH, "/info"})
POST_ENDPOINTS = frozenset({"/", "/generate", "/generate_stream", "/embed", "/attention", "/tokenize"})
ENDPOINTS = GET_ENDPOINTS | POST_ENDPOINTS
OPENAI_PREFIX = "/v1"

DEFAULT_PORT = 8000

# --- Settings (pydantic-settings, prefix ATTNSERVE_) ------------------------

SETTINGS = frozenset(
    {
        "ATTNSERVE_MODEL",
        "ATTNSERVE_HOST",
        "ATTNSERVE_PORT",
        "ATTNSERVE_DEVICE",
        "ATTNSERVE_DTYPE",
        "ATTNSERVE_MAX_BATCH_SIZE",
        "ATTNSERVE_MAX_QUEUE_SIZE",
        "ATTNSERVE_MAX_INPUT_TOKENS",
        "ATTNSERVE_MAX_TOTAL_TOKENS",
        "ATTNSERVE_DRAIN_TIMEOUT_S",
        "ATTNSERVE_API_KEY",
        "ATTNSERVE_API_KEY_FILE",
        "ATTNSERVE_LOG_LEVEL",
        "ATTNSERVE_TORCH_THREADS",
    }
)
DEVICES = frozenset({"auto", "cpu", "cuda"})
DTYPES = frozenset({"auto", "float32", "bfloat16", "float16"})
DEFAULT_DRAIN_TIMEOUT_S = 30

# --- Metrics ----------------------------------------------------------------

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

# name as exposed (counters with _total) -> (type, label names)
METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "attnserve_requests_total": (COUNTER, frozenset({"endpoint", "status"})),
    "attnserve_request_duration_seconds": (HISTOGRAM, frozenset({"endpoint"})),
    "attnserve_time_to_first_token_seconds": (HISTOGRAM, frozenset()),
    "attnserve_inter_token_latency_seconds": (HISTOGRAM, frozenset()),
    "attnserve_queue_wait_seconds": (HISTOGRAM, frozenset()),
    "attnserve_queue_size": (GAUGE, frozenset()),
    "attnserve_running_requests": (GAUGE, frozenset()),
    "attnserve_batch_size": (HISTOGRAM, frozenset()),
    "attnserve_batch_tokens": (HISTOGRAM, frozenset()),
    "attnserve_prompt_tokens_total": (COUNTER, frozenset()),
    "attnserve_generated_tokens_total": (COUNTER, frozenset()),
    "attnserve_kv_cache_usage_ratio": (GAUGE, frozenset()),
    "attnserve_model_info": (GAUGE, frozenset({"model", "device", "dtype"})),
}

# Series Prometheus itself attaches to every scrape.
SYNTHETIC_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

# Target labels: job/instance everywhere; the rest from the Prometheus Operator
# (ServiceMonitor) and from deploy/prometheus/prometheus.yml's static labels.
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "service", "container", "endpoint", "environment"}
)
OPERATOR_TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
)


def exported_series() -> frozenset[str]:
    """Every series name a scrape of the service shows."""
    names: set[str] = set()
    for name, (kind, _labels) in METRICS.items():
        if kind == HISTOGRAM:
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return frozenset(names)


def series_base(series: str) -> str:
    """attnserve_batch_size_bucket -> attnserve_batch_size."""
    if series in METRICS:
        return series
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix) and series[: -len(suffix)] in METRICS:
            return series[: -len(suffix)]
    raise KeyError(series)


def metric_labels() -> frozenset[str]:
    labels: set[str] = {"le"}
    for _kind, names in METRICS.values():
        labels |= names
    return frozenset(labels)


# --- A small PromQL reader ---------------------------------------------------
# Enough to list the metric names and label names an expression refers to.
# Syntax itself is checked by promtool (tests/deploy/test_prometheus_config.py).

# aggregation operators and keywords
_PROMQL_WORDS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
        "start",
        "end",
    ]
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_TEMPLATE_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])")


def _strip_template_vars(expr: str) -> str:
    return _TEMPLATE_VAR.sub("1m", expr)


def promql_refs(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression refers to."""
    text = _strip_template_vars(expr)
    labels: set[str] = set()
    for block in _MATCHERS.findall(_STRING.sub('""', text)):
        labels |= set(_MATCHER_LABEL.findall(block))
    text = _STRING.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    for group in _GROUPING.findall(text):
        labels |= {g.strip() for g in group.split(",") if g.strip()}
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    names: set[str] = set()
    for m in _IDENT.finditer(text):
        word = m.group(1)
        rest = text[m.end() :].lstrip()
        if rest.startswith("("):  # a function or an aggregation
            continue
        if word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    labels.discard("__name__")
    return names, labels
