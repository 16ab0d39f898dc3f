"""The app's startup: where the model is loaded, and what a failed load does."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model import CheckpointError

from .conftest import make_settings


def test_the_model_loads_on_a_thread_that_is_gone_once_ready(model_dir: Path) -> None:
    # A live thread that ran torch keeps an OpenMP team that slows the engine loop's (app/main.py).
    seen: list[str] = []
    original = threading.Thread.start

    def spy(thread: threading.Thread) -> None:
        seen.append(thread.name)
        original(thread)

    threading.Thread.start = spy  # type: ignore[method-assign]
    try:
        with TestClient(create_app(make_settings(model_dir))) as client:
            assert client.post("/generate", json={"inputs": "Simple is", "parameters": {"max_new_tokens": 2}}
                               ).status_code == 200
            names = {t.name for t in threading.enumerate()}
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    assert "engine-load" in seen
    assert "engine-load" not in names
    assert "engine-loop" in names


def test_a_model_that_cannot_load_fails_startup_with_its_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError), TestClient(create_app(make_settings(tmp_path / "missing"))):
        pass
