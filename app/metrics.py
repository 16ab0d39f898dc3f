"""Prometheus metrics, one registry per app so tests can build several apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# The *_created series double the scrape size and no dashboard uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0)
TOKEN_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256)
TOKEN_BUCKETS = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("attnserve_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.request_duration = Histogram("attnserve_request_duration_seconds",
                                          "Request duration, arrival to last byte", ["endpoint"],
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("attnserve_time_to_first_token_seconds", "Arrival to first generated token",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("attnserve_inter_token_latency_seconds", "Time between consecutive tokens of a stream",
                             buckets=TOKEN_LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("attnserve_queue_wait_seconds", "Time from arrival to joining a batch",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.queue_size = Gauge("attnserve_queue_size", "Requests waiting for the engine", registry=r)
        self.running = Gauge("attnserve_running_requests", "Sequences in the running generation batch", registry=r)
        self.batch_size = Histogram("attnserve_batch_size", "Sequences per engine step", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.batch_tokens = Histogram("attnserve_batch_tokens", "Tokens through the model per engine step",
                                      buckets=TOKEN_BUCKETS, registry=r)
        self.prompt_tokens = Counter("attnserve_prompt_tokens", "Prompt tokens admitted", registry=r)
        self.generated_tokens = Counter("attnserve_generated_tokens", "Tokens generated", registry=r)
        self.kv_usage = Gauge("attnserve_kv_cache_usage_ratio", "Fraction of KV cache positions in use", registry=r)
        self.model_info = Gauge("attnserve_model_info", "The model being served (value is always 1)",
                                ["model", "device", "dtype"], registry=r)

    def observe_batch(self, sequences: int, tokens: int) -> None:
        self.batch_size.observe(sequences)
        self.batch_tokens.observe(tokens)
