"""docker-compose.yml (+ docker-compose.gpu.yml): parses, and every file it refers to exists.

No Docker engine or compose plugin runs here, so the file is read with PyYAML
and checked the way compose would resolve it (variables at their defaults).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .deploy_contract import DEFAULT_DRAIN_TIMEOUT_S, REPO, SETTINGS
from .deploy_util import run

COMPOSE = REPO / "docker-compose.yml"
GPU = REPO / "docker-compose.gpu.yml"
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def interpolate(value: str) -> str:
    """${VAR:-default} -> default; ${VAR} -> '' (the variable unset)."""
    return _VAR.sub(lambda m: m.group(2) or "", value)


def duration_s(value: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value):
        total += float(number) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) for every bind mount (named volumes left out)."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = interpolate(v).split(":")
            if parts[0].startswith((".", "/", "~")):
                out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        elif v.get("type") == "bind":
            out.append((interpolate(v["source"]), v["target"], bool(v.get("read_only"))))
    return out


def test_services() -> None:
    compose = load(COMPOSE)
    assert {"attnserve", "prometheus", "grafana"} <= set(compose["services"])
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, f"{name}: pin the image tag"


def test_referenced_files_exist() -> None:
    compose = load(COMPOSE)
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = REPO / interpolate(build["context"] if isinstance(build, dict) else build)
            assert context.is_dir(), f"{name}: build context {context}"
            dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
            assert (context / dockerfile).is_file(), f"{name}: {dockerfile}"
        for source, target, _ro in bind_mounts(service):
            assert (REPO / source).exists(), f"{name}: {source} (mounted at {target}) does not exist"
        for env_file in service.get("env_file", []) if isinstance(service.get("env_file"), list) else []:
            assert (REPO / env_file).is_file()


def test_attnserve_service() -> None:
    service = load(COMPOSE)["services"]["attnserve"]
    env = service["environment"]
    assert env["ATTNSERVE_HOST"] == "0.0.0.0"
    unknown = {k for k in env if k.startswith("ATTNSERVE_")} - SETTINGS
    assert not unknown, unknown
    assert service["build"]["args"]["VARIANT"] == "cpu"
    port = env.get("ATTNSERVE_PORT", "8000")
    assert any(interpolate(str(p)).endswith(f":{port}") for p in service["ports"])
    mounts = {target: (source, ro) for source, target, ro in bind_mounts(service)}
    assert "/models" in mounts and mounts["/models"][1], "models mounted read-only at /models"
    # Graceful drain: compose must wait longer than the server drains before SIGKILL.
    drain = float(env.get("ATTNSERVE_DRAIN_TIMEOUT_S", DEFAULT_DRAIN_TIMEOUT_S))
    assert duration_s(service["stop_grace_period"]) > drain
    assert service.get("read_only") is True
    assert {"/tmp", "/home/attnserve/.cache"} <= set(service["tmpfs"])
    assert service.get("cap_drop") == ["ALL"]


def test_prometheus_service_mounts_its_config_and_rules() -> None:
    service = load(COMPOSE)["services"]["prometheus"]
    config_arg = next(a for a in service["command"] if a.startswith("--config.file="))
    config_path = config_arg.split("=", 1)[1]
    mounts = {target: source for source, target, _ro in bind_mounts(service)}
    local_config = REPO / mounts[config_path]
    assert local_config == REPO / "deploy" / "prometheus" / "prometheus.yml"
    # rule_files are relative to the config: the same globs must match inside the container.
    for pattern in load(local_config).get("rule_files", []):
        directory = str(Path(config_path).parent / Path(pattern).parent)
        assert directory in mounts, f"{pattern}: {directory} is not mounted"
        assert list((REPO / mounts[directory]).glob(Path(pattern).name)), pattern


def test_grafana_service_mounts_provisioning() -> None:
    service = load(COMPOSE)["services"]["grafana"]
    mounts = {target: source for source, target, _ro in bind_mounts(service)}
    for kind in ("datasources", "dashboards"):
        source = mounts[f"/etc/grafana/provisioning/{kind}"]
        assert list((REPO / source).glob("*.yml")), f"nothing to provision in {source}"
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    (directory,) = [t for t in mounts if home.startswith(t + "/")]
    assert (REPO / mounts[directory] / home[len(directory) + 1 :]).is_file()


def test_gpu_override() -> None:
    base, gpu = load(COMPOSE), load(GPU)
    assert set(gpu["services"]) <= set(base["services"])
    service = gpu["services"]["attnserve"]
    assert service["build"]["args"]["VARIANT"] == "cuda"
    assert "cuda" in service["image"]
    assert service["environment"]["ATTNSERVE_DEVICE"] == "cuda"
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert device.get("count") == "all" or int(device.get("count", 1)) >= 1


def test_docker_compose_config_when_available() -> None:
    """The real parser, where a compose plugin exists (not on these machines)."""
    docker = shutil.which("docker")
    if docker is None or run([docker, "compose", "version"]).returncode != 0:
        pytest.skip("no `docker compose` plugin here; the checks above read the file with PyYAML")
    for files in (["-f", str(COMPOSE)], ["-f", str(COMPOSE), "-f", str(GPU)]):
        proc = run([docker, "compose", *files, "config", "--quiet"], cwd=REPO)
        assert proc.returncode == 0, proc.stderr
