"""Running the app under uvicorn, with a graceful drain on SIGTERM.

First SIGTERM/SIGINT: /health turns 503, new requests get 503, admitted requests and
streams run to their end (up to drain_timeout_s), then the server exits 0. A second
signal exits at once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import uvicorn
from fastapi import FastAPI

from .config import Settings
from .state import AppState

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.state = state
        self.drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.state.draining or not self.state.ready:
            super().handle_exit(sig, frame)  # second signal, or nothing to drain: stop now
            return
        self.state.draining = True
        self.drain_deadline = time.monotonic() + self.state.settings.drain_timeout_s
        logger.info("draining", extra={"fields": {"in_flight": self.state.in_flight,
                                                  "timeout_s": self.state.settings.drain_timeout_s}})

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and not self.should_exit:
            if self.state.in_flight == 0 or time.monotonic() > self.drain_deadline:
                logger.info("drained", extra={"fields": {"in_flight": self.state.in_flight}})
                return True
            return False
        return await super().on_tick(counter)


def serve(app: FastAPI, settings: Settings) -> None:
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                            timeout_graceful_shutdown=5, access_log=False)
    DrainingServer(config, app.state.attnserve).run()
