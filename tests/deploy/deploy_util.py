"""Helpers shared by the deploy tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .deploy_contract import REPO

K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")


def require_tool(name: str, how: str) -> str:
    """Path of an executable; fail (not skip) when it is missing.

    Looks next to the running interpreter first, where pip puts console
    scripts, then on PATH.
    """
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed; {how}", pytrace=False)
    return found


def run(cmd: list[str], *, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def dockerfile_instructions(path: Path | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined, comments dropped."""
    text = (path or REPO / "Dockerfile").read_text()
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1] :]


def promtool_check_exprs(promtool: str, exprs: dict[str, str], workdir: Path) -> None:
    """PromQL syntax check offline: each expression as a recording rule, then `promtool check rules`."""
    rules = [{"record": f"check:expr_{i}", "expr": expr} for i, expr in enumerate(exprs.values())]
    path = workdir / "exprs.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}, sort_keys=False))
    proc = run([promtool, "check", "rules", str(path)])
    if proc.returncode != 0:
        where = "\n".join(f"  expr_{i} = {name}: {expr}" for i, (name, expr) in enumerate(exprs.items()))
        raise AssertionError(f"promtool rejects a query:\n{proc.stdout}{proc.stderr}\n{where}")


def grafana_expr(expr: str) -> str:
    """A Grafana query with its template variables replaced by values Prometheus accepts."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace('=~"$instance"', '=~".*"')
    )
