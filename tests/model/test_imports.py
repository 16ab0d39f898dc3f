"""The package's public surface: `import model` stays free of web code, and __all__ is real."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import model

ROOT = Path(__file__).resolve().parents[2]
WEB = ["fastapi", "starlette", "pydantic", "pydantic_settings", "prometheus_client", "uvicorn", "jinja2"]


def web_modules_after(imports: str) -> list[str]:
    """The web packages in sys.modules of a fresh interpreter after `import <imports>`."""
    code = (f"import json, sys; import {imports}; "
            f"print(json.dumps(sorted(m for m in {WEB!r} if m in sys.modules)))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    found: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_import_model_pulls_in_no_web_framework() -> None:
    assert web_modules_after("model, model.train, model.evaluate") == []


@pytest.mark.skipif(importlib.util.find_spec("starlette") is None, reason="starlette is not installed")
def test_the_probe_sees_a_web_framework() -> None:
    assert "starlette" in web_modules_after("model, starlette")


def test_public_api_is_complete() -> None:
    for name in model.__all__:
        assert hasattr(model, name), name
    assert model.__doc__ is not None
    for name in ("Transformer", "KVCache", "prefill", "decode", "generate", "load_checkpoint", "Tokenizer",
                 "IncrementalDecoder", "select_tokens", "pool", "CheckpointError"):
        assert name in model.__all__ and name in model.__doc__, name
    assert issubclass(model.CheckpointError, ValueError)
