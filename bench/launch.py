"""Start `python -m app` as a subprocess on a free port, wait until it is ready, stop it after."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from . import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerSpec:
    """What to serve and how: the flags of `python -m app` the benchmark varies."""

    model: Path | None = None  # None: the built-in default model
    threads: int = 2
    device: str = "cpu"
    dtype: str = "float32"
    max_batch_size: int = 64
    max_total_tokens: int | None = None
    extra_args: list[str] = field(default_factory=list)

    def argv(self, port: int) -> list[str]:
        args = [sys.executable, "-m", "app", "--port", str(port), "--torch-threads", str(self.threads),
                "--device", self.device, "--dtype", self.dtype, "--max-batch-size", str(self.max_batch_size),
                "--log-level", "warning"]
        if self.model is not None:
            args += ["--model", str(self.model)]
        if self.max_total_tokens is not None:
            args += ["--max-total-tokens", str(self.max_total_tokens)]
        return args + self.extra_args


class LaunchedServer:
    """A context manager: the server runs inside the `with` block; its log goes to `log_path`."""

    def __init__(self, spec: ServerSpec, log_path: Path, ready_timeout_s: float = 600.0) -> None:
        self.spec = spec
        self.port = free_port()
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LaunchedServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # One pool of `threads` threads in the server: OpenMP must not add its own on top of torch's.
        env.update(OMP_NUM_THREADS=str(self.spec.threads), MKL_NUM_THREADS=str(self.spec.threads),
                   TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.spec.argv(self.port), cwd=REPO_ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode} before it was ready; "
                                   f"its log:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.2)
        raise TimeoutError(f"the server was not ready after {self.ready_timeout_s:.0f} s; "
                           f"log:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (the server drains, nothing is in flight), then kill if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
