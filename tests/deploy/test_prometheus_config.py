"""deploy/prometheus: promtool accepts the config and the rules, the rules' unit tests pass,
and every query names only metrics the service exports."""

from __future__ import annotations

from pathlib import Path

import yaml

from .deploy_contract import (
    METRICS_PATH,
    REPO,
    SYNTHETIC_SERIES,
    TARGET_LABELS,
    exported_series,
    metric_labels,
    promql_refs,
)
from .deploy_util import K8S, promtool_check_exprs, run

PROM = REPO / "deploy" / "prometheus"


def test_promtool_check_config(promtool: str) -> None:
    proc = run([promtool, "check", "config", str(PROM / "prometheus.yml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_promtool_check_rules(promtool: str) -> None:
    files = sorted((PROM / "rules").glob("*.rules.yml"))
    assert files, "no rule files"
    proc = run([promtool, "check", "rules", *map(str, files)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rule_unit_tests(promtool: str) -> None:
    files = sorted((PROM / "tests").glob("*.yml"))
    assert files, "no rule unit tests"
    proc = run([promtool, "test", "rules", *map(str, files)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rejects_a_broken_config(promtool: str, tmp_path: Path) -> None:
    bad = tmp_path / "prometheus.yml"
    bad.write_text("scrape_configs:\n  - job_name: x\n    scrape_intervall: 5s\n")
    assert run([promtool, "check", "config", str(bad)]).returncode != 0


def test_scrape_config_targets_the_service() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "attnserve"]
    assert job.get("metrics_path", "/metrics") == METRICS_PATH
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    env = compose["services"]["attnserve"]["environment"]
    assert targets == [f"attnserve:{env.get('ATTNSERVE_PORT', '8000')}"]
    assert "attnserve" in compose["services"]


def rule_exprs() -> dict[str, str]:
    exprs: dict[str, str] = {}
    for path in sorted((PROM / "rules").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs[rule.get("alert") or rule["record"]] = rule["expr"]
    return exprs


def test_rules_name_only_exported_metrics() -> None:
    allowed = exported_series() | SYNTHETIC_SERIES
    labels_ok = metric_labels() | TARGET_LABELS
    for name, expr in rule_exprs().items():
        names, labels = promql_refs(expr)
        assert names, f"{name}: no metric"
        assert names <= allowed, f"{name}: unknown metrics {names - allowed}"
        assert labels <= labels_ok, f"{name}: unknown labels {labels - labels_ok}"


def test_prometheus_adapter_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """The adapter's metricsQuery, with its template filled the way the adapter fills it."""
    config = yaml.safe_load((K8S / "prometheus-adapter" / "config.yaml").read_text())
    exprs = {}
    for i, rule in enumerate(config["rules"]):
        (series,), _ = promql_refs(rule["seriesQuery"])
        exprs[f"rule {i}"] = (
            rule["metricsQuery"]
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", 'namespace="attnserve",pod=~"attnserve-.*"')
            .replace("<<.GroupBy>>", "pod")
        )
        exprs[f"rule {i} seriesQuery"] = rule["seriesQuery"]
    promtool_check_exprs(promtool, exprs, tmp_path)
