"""Fuzzing from /openapi.json with schemathesis: every operation, a bounded number of examples,
a fixed seed. No 5xx, and every response documented: status code, content type, headers, and a
body (JSON, or each SSE event's JSON) matching its schema; schema-violating requests are refused.

The server runs with an API key, so the schema declares the Bearer scheme and the `ignored_auth`
check also sends each operation without a key and with a wrong one: both must be refused.

One check is left out: `positive_data_acceptance` (every schema-valid request must succeed). The
limits that depend on the tokenizer and the model (prompt tokens, prompt + max_new_tokens against
the context, a prompt of only whitespace, layer and head indices, unsupported TGI options) cannot be
written in a JSON schema, so schema-valid requests that break them are rightly answered 422.

The native routes and OpenAI's /v1 routes are separate tests, so that a failure names its side.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.main import create_app
from app.middleware import OPEN_PATHS

from .conftest import LiveServer, make_settings

KEY = "fuzz-key"
MAX_EXAMPLES = 100  # per operation and phase (examples, coverage, fuzzing): a few thousand requests, 25-50 s
FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzz_server(model_dir: Path) -> Iterator[LiveServer]:
    # Short generations (the fuzzer's valid requests may ask for the whole context), a key to enforce.
    app = create_app(make_settings(model_dir, api_key=KEY, default_max_new_tokens=8, request_timeout_s=2.0))
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(fuzz_server: LiveServer) -> Any:
    config = SchemathesisConfig.from_dict({
        "seed": 1,
        "headers": {"Authorization": f"Bearer {KEY}"},
        "request-timeout": 60,
        "generation": {"max-examples": MAX_EXAMPLES},
    })
    return schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path_regex="^/v1/").parametrize()
@FUZZ_SETTINGS
def test_native_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance], timeout=60)


@schema.include(path_regex="^/v1/").parametrize()
@FUZZ_SETTINGS
def test_openai_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance], timeout=60)


def test_every_operation_was_exercised_and_nothing_is_left_running(fuzz_server: LiveServer) -> None:
    """Runs after the fuzz tests above (file order): each operation got requests, no 5xx was ever
    answered (streams included), and the engine is empty and healthy again."""
    deadline = time.monotonic() + 30
    while fuzz_server.metric("attnserve_running_requests") or fuzz_server.metric("attnserve_queue_size"):
        assert time.monotonic() < deadline, "requests left running after the fuzzing"
        time.sleep(0.1)
    assert fuzz_server.metric("attnserve_kv_cache_usage_ratio") == 0
    assert httpx.get(fuzz_server.url + "/health").status_code == 200

    counts: dict[str, float] = {}
    for line in httpx.get(fuzz_server.url + "/metrics").text.splitlines():
        if line.startswith("attnserve_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            assert 'status="5' not in labels, line
            endpoint = re.sub(r"\{(\w+):\w+\}", r"{\1}", labels.split('endpoint="', 1)[1].split('"', 1)[0])
            counts[endpoint] = counts.get(endpoint, 0) + float(value)
    paths = httpx.get(fuzz_server.url + "/openapi.json").json()["paths"]
    starved = {p: counts.get(p, 0) for p in paths if p not in OPEN_PATHS and counts.get(p, 0) < 10}
    assert not starved, f"operations the fuzzer barely reached: {starved}"
