"""What the app holds while it runs: the loaded engine, its scheduler and service, and its status."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Settings
from .engine import Engine
from .metrics import Metrics
from .scheduler import Scheduler
from .service import Service


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    engine: Engine | None = None
    scheduler: Scheduler | None = None
    service: Service | None = None
    model_id: str = ""
    ready: bool = False
    draining: bool = False
    in_flight: int = 0  # admitted HTTP requests not yet answered (streams included)
    api_keys: list[str] = field(default_factory=list)

    def healthy(self) -> bool:
        return (self.ready and not self.draining and self.scheduler is not None
                and self.scheduler.healthy())
