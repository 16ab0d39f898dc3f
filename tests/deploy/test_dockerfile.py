"""Dockerfile and .dockerignore: hadolint, and what an operator relies on in the image."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from .deploy_contract import DEFAULT_PORT, HEALTH_PATH, REPO
from .deploy_util import dockerfile_instructions, final_stage, run


def test_hadolint_passes(hadolint: str) -> None:
    proc = run([hadolint, "--no-color", str(REPO / "Dockerfile")])
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_hadolint_is_not_a_no_op(hadolint: str, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\nCMD python -m app\n")
    proc = run([hadolint, "--no-color", "-f", "json", str(bad)])
    codes = {finding["code"] for finding in json.loads(proc.stdout)}
    assert proc.returncode != 0 and {"DL3007", "DL3013", "DL3025"} <= codes, codes


def test_multi_stage_cpu_default_cuda_by_build_arg() -> None:
    ins = dockerfile_instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: build tools stay out of the runtime image"
    assert all(re.search(r"\bAS\s+\w+", f, re.IGNORECASE) for f in froms)
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1] if "=" in rest else None for w, rest in ins if w == "ARG"
    }
    assert args["VARIANT"] == "cpu"
    text = (REPO / "Dockerfile").read_text()
    assert "https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"https://download\.pytorch\.org/whl/\$\{?CUDA_TAG\}?", text)
    assert "cuda)" in text and "cpu)" in text, "VARIANT selects the torch wheel"


def test_installs_the_project_from_pyproject() -> None:
    ins = dockerfile_instructions()
    copies = [rest for word, rest in ins if word == "COPY" and "--from" not in rest]
    sources = {src for rest in copies for src in rest.split()[:-1]}
    assert "pyproject.toml" in sources
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: no such file"
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert re.search(r"pip install [^&;]*(?<!\S)\.(?!\S)", runs), "pip install . (from pyproject.toml)"
    assert "requirements" not in runs


def test_runtime_stage() -> None:
    stage = final_stage(dockerfile_instructions())
    words = [w for w, _ in stage]
    assert any(w == "COPY" and "--from=builder" in rest for w, rest in stage)
    user = dict(stage)["USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can check it)"
    assert words.index("USER") < words.index("ENTRYPOINT")
    env = dict(kv.split("=", 1) for w, rest in stage if w == "ENV" for kv in rest.split())
    assert env["ATTNSERVE_HOST"] == "0.0.0.0"
    assert int(env["ATTNSERVE_PORT"]) == DEFAULT_PORT
    assert str(DEFAULT_PORT) in dict(stage)["EXPOSE"]


def test_exec_form_entrypoint_runs_the_server() -> None:
    stage = dict(final_stage(dockerfile_instructions()))
    entrypoint = json.loads(stage["ENTRYPOINT"])  # JSON array: exec form, signals reach python
    assert entrypoint in (["python", "-m", "app"], ["attnserve"])
    assert json.loads(stage.get("CMD", "[]")) == []


def test_healthcheck_probes_health_without_curl() -> None:
    stage = dict(final_stage(dockerfile_instructions()))
    check = stage["HEALTHCHECK"]
    cmd = json.loads(check[check.index("CMD") + 3 :].strip())
    assert cmd[0] == "python"
    assert HEALTH_PATH in cmd[-1] and "curl" not in check and "wget" not in check
    # The one-liner is valid Python and fails (non-zero) when nothing answers.
    proc = subprocess.run(
        [sys.executable, "-c", cmd[-1]],
        env={**os.environ, "ATTNSERVE_PORT": "9"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert b"SyntaxError" not in proc.stderr


def test_models_mount_point_exists() -> None:
    runs = " ".join(rest for word, rest in final_stage(dockerfile_instructions()) if word == "RUN")
    assert re.search(r"mkdir[^&;]*\s/models\b", runs)


# --- .dockerignore ----------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """One .dockerignore pattern (Go filepath.Match plus **) as a regex."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            j = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : j].replace("^", "\\^", 1) + "]", j + 1
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out)


def dockerignore_excludes(path: str, lines: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        regex = _pattern_regex(pattern.strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_sends_only_what_the_build_needs() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    kept = [
        "pyproject.toml",
        "README.md",
        "app/__init__.py",
        "app/routes/generate.py",
        "model/__init__.py",
        "model/default/config.json",  # the built-in model (package data)
        "model/default/model.safetensors",
        "model/default/tokenizer.json",
    ]
    dropped = [
        ".git/HEAD",
        "tests/deploy/test_manifests.py",
        "runs/train.log",
        "bench/out/x.json",
        "deploy/k8s/base/deployment.yaml",
        "app/__pycache__/x.cpython-311.pyc",
        "model/__pycache__/x.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        "attnserve.egg-info/PKG-INFO",
        "docker-compose.yml",
        ".venv/bin/python",
    ]
    for path in kept:
        assert not dockerignore_excludes(path, lines), f"{path} must reach the build"
    for path in dropped:
        assert dockerignore_excludes(path, lines), f"{path} should not be in the build context"


def test_every_copy_source_survives_dockerignore() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    for word, rest in dockerfile_instructions():
        if word != "COPY" or "--from" in rest:
            continue
        for src in rest.split()[:-1]:
            src = src.rstrip("/")
            files = (
                [p for p in (REPO / src).rglob("*") if p.is_file()] if (REPO / src).is_dir() else [REPO / src]
            )
            files = [f for f in files if "__pycache__" not in f.parts]
            for f in files:
                rel = f.relative_to(REPO).as_posix()
                assert not dockerignore_excludes(rel, lines), f"COPY {src}: {rel} is ignored"
