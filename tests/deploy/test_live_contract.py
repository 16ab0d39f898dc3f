"""The deploy files' contract against the real app: a live scrape passes `promtool check metrics`,
exports exactly the metrics (types and labels) the dashboards and autoscaler use, and the app
serves the paths and reads the settings the manifests name."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.main import create_app

from ..app.conftest import build_tiny_model, make_settings
from .deploy_contract import ENDPOINTS, METRICS, SETTINGS


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    model = build_tiny_model(tmp_path_factory.mktemp("tiny-deploy"))
    with TestClient(create_app(make_settings(model))) as c:
        c.post("/generate", json={"inputs": "Flat is better", "parameters": {"max_new_tokens": 4}})
        c.post("/generate_stream", json={"inputs": "Flat", "parameters": {"max_new_tokens": 3}})
        c.post("/embed", json={"inputs": ["a", "b"]})
        c.post("/generate", json={"inputs": ""})
        yield c


def test_scrape_after_traffic_passes_promtool(client: TestClient, promtool: str) -> None:
    scrape = client.get("/metrics").text
    check = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True, text=True)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr


def test_scrape_exports_the_contract(client: TestClient) -> None:
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    for exposed, (kind, labels) in METRICS.items():
        name = exposed.removesuffix("_total") if kind == "counter" else exposed
        assert name in families, exposed
        family = families[name]
        assert family.type == kind, exposed
        sample_labels = {k for s in family.samples for k in s.labels if k not in ("le",)}
        assert sample_labels == set(labels), (exposed, sample_labels)


def test_app_serves_the_paths_and_settings(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) | {"/metrics", "/health", "/live"} >= ENDPOINTS
    for path in ("/health", "/live", "/metrics", "/info"):
        assert client.get(path).status_code == 200, path
    fields = {f"ATTNSERVE_{name.upper()}" for name in Settings.model_fields}
    assert fields >= SETTINGS


