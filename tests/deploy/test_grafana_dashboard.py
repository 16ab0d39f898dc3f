"""deploy/grafana: provisioning parses, and the dashboard queries only what the service exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .deploy_contract import (
    HISTOGRAM,
    METRICS,
    REPO,
    TARGET_LABELS,
    exported_series,
    metric_labels,
    promql_refs,
    series_base,
)
from .deploy_util import grafana_expr, promtool_check_exprs

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "attnserve.json"


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return out


def queries() -> dict[str, str]:
    """'panel title / refId' -> PromQL expression."""
    found: dict[str, str] = {}
    for p in panels(dashboard()):
        for t in p.get("targets", []):
            found[f"{p['title']} / {t['refId']}"] = t["expr"]
    return found


def provisioned_datasource() -> dict[str, Any]:
    files = sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml"))
    assert files
    sources = [ds for f in files for ds in yaml.safe_load(f.read_text())["datasources"]]
    (prometheus,) = [ds for ds in sources if ds["type"] == "prometheus"]
    result: dict[str, Any] = prometheus
    return result


def test_datasource_provisioning() -> None:
    ds = provisioned_datasource()
    assert ds["uid"] and ds["access"] == "proxy"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    host, port = ds["url"].removeprefix("http://").split(":")
    assert host in compose["services"], "the data source URL names the compose service"
    assert any(str(p).endswith(f":{port}") for p in compose["services"][host]["ports"])


def test_dashboard_provider() -> None:
    files = sorted((GRAFANA / "provisioning" / "dashboards").glob("*.yml"))
    assert files
    (provider,) = [p for f in files for p in yaml.safe_load(f.read_text())["providers"]]
    assert provider["type"] == "file"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if isinstance(v, str))
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]


def test_dashboard_is_wellformed() -> None:
    dash = dashboard()
    assert dash["uid"] == "attnserve" and dash["title"]
    assert isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    # No two panels overlap on the 24-column grid.
    cells: set[tuple[int, int]] = set()
    for p in panels(dash):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine


def test_panels_use_the_provisioned_datasource() -> None:
    dash = dashboard()
    uid = provisioned_datasource()["uid"]
    (var,) = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert var["query"] == "prometheus" and var["current"]["value"] == uid
    allowed = {uid, "${" + var["name"] + "}", "$" + var["name"]}
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] in allowed, p["title"]
        for t in p["targets"]:
            assert t.get("datasource", p["datasource"])["uid"] in allowed


def test_queries_name_only_exported_metrics() -> None:
    allowed = exported_series()
    labels_ok = metric_labels() | TARGET_LABELS
    found = queries()
    assert found
    for where, expr in found.items():
        names, labels = promql_refs(expr)
        assert names, f"{where}: no metric in {expr}"
        assert names <= allowed, f"{where}: not exported: {names - allowed}"
        assert labels <= labels_ok, f"{where}: unknown labels {labels - labels_ok}"
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            definition = var["definition"]
            metric = definition[definition.index("(") + 1 : definition.index(",")].strip()
            label = definition[definition.index(",") + 1 : definition.rindex(")")].strip()
            assert metric in allowed and label in labels_ok, definition


def test_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    promtool_check_exprs(promtool, {k: grafana_expr(v) for k, v in queries().items()}, tmp_path)


def test_histogram_quantiles_are_over_buckets_by_le() -> None:
    for where, expr in queries().items():
        if "histogram_quantile" not in expr:
            continue
        names, labels = promql_refs(expr)
        assert all(n.endswith("_bucket") and METRICS[series_base(n)][0] == HISTOGRAM for n in names), where
        assert "le" in labels, f"{where}: aggregate buckets by le"


def test_dashboard_covers_the_issue() -> None:
    """requests/s, tokens/s, TTFT and inter-token quantiles, queue, running, batch size, KV cache, errors."""
    exprs = list(queries().values())

    def uses(metric: str, *, quantile: bool = False, rate: bool = False) -> bool:
        for e in exprs:
            if metric in promql_refs(e)[0]:
                if quantile and "histogram_quantile" not in e:
                    continue
                if rate and "rate(" not in e:
                    continue
                return True
        return False

    assert uses("attnserve_requests_total", rate=True)
    assert uses("attnserve_generated_tokens_total", rate=True)
    assert uses("attnserve_time_to_first_token_seconds_bucket", quantile=True)
    assert uses("attnserve_inter_token_latency_seconds_bucket", quantile=True)
    assert uses("attnserve_queue_size")
    assert uses("attnserve_running_requests")
    assert uses("attnserve_batch_size_bucket") or uses("attnserve_batch_size_sum")
    assert uses("attnserve_kv_cache_usage_ratio")
    errors = [e for e in exprs if "attnserve_requests_total" in e and "status" in promql_refs(e)[1]]
    assert any("by (status" in e.replace("  ", " ") for e in errors), "errors broken down by status"
