"""create_app(): the FastAPI application; its lifespan loads the model and runs the engine loop."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import torch
from fastapi import Depends, FastAPI, Security
from fastapi.middleware.cors import CORSMiddleware

from model import LoadedModel, load_checkpoint, resolve_device, resolve_dtype

from . import __version__
from .config import Settings, get_settings
from .deps import bearer_scheme, require_api_key
from .engine import Engine
from .errors import install_error_handlers
from .metrics import Metrics
from .middleware import ServingMiddleware
from .openai.errors import install_openai_error_handlers
from .openai.router import router as openai_router
from .routes import attention, embed, generate, health, tokenize
from .scheduler import Limits, Scheduler
from .service import Service
from .state import AppState

logger = logging.getLogger(__name__)
T = TypeVar("T")


def build_engine(settings: Settings, loaded: LoadedModel | None = None) -> Engine:
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    loaded = loaded or load_checkpoint(settings.model, device=device, dtype=dtype)
    context = loaded.model.cfg.max_seq_len
    max_total = min(settings.max_total_tokens or context, context)
    return Engine(loaded, device, dtype, settings.max_batch_size, max_total, prepack=settings.cpu_prepack)


def load_engine(settings: Settings, loaded: LoadedModel | None = None) -> Engine:
    engine = build_engine(settings, loaded)
    if settings.warmup:
        engine.warmup()
    return engine


async def in_passing_thread(fn: Callable[[], T]) -> T:
    """Run fn on a thread of its own that exits afterwards.

    A thread that ran torch keeps an OpenMP thread team for as long as it lives. With a second team
    next to the engine loop's, libgomp counts more threads than cores and stops its workers spinning,
    so every parallel region waits for a worker to wake up: GPT-2-small decoded at 32 ms/step
    instead of 24 (2 cores) when the model was loaded on asyncio's (long-lived) worker thread.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # the awaiting coroutine was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            loop.call_soon_threadsafe(settle, fn(), None)
        except BaseException as exc:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)

    threading.Thread(target=target, name="engine-load", daemon=True).start()
    return await future


def model_name(settings: Settings, loaded_path: Path) -> str:
    if settings.model_id:
        return settings.model_id
    return "attnserve-default" if settings.model is None else loaded_path.name


def create_app(settings: Settings | None = None, loaded: LoadedModel | None = None) -> FastAPI:
    """The app; `loaded` lets tests hand in a model already in memory."""
    settings = settings or get_settings()
    state = AppState(settings=settings, metrics=Metrics(), api_keys=settings.api_keys())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = await in_passing_thread(lambda: load_engine(settings, loaded))
        limits = Limits(
            max_batch_size=settings.max_batch_size, max_batch_prefill_tokens=settings.max_batch_prefill_tokens,
            max_queue_size=settings.max_queue_size, max_queued_tokens=settings.max_queued_tokens,
            embed_max_batch_size=settings.embed_max_batch_size,
            embed_max_batch_tokens=settings.embed_max_batch_tokens,
            embed_max_wait_s=settings.embed_max_wait_ms / 1000, stall_timeout_s=settings.stall_timeout_s)
        scheduler = Scheduler(engine, limits, state.metrics)
        state.model_id = model_name(settings, (loaded.path if loaded else settings.model) or Path("default"))
        state.engine, state.scheduler = engine, scheduler
        state.service = Service(engine, scheduler, settings, state.metrics, state.model_id)
        state.metrics.model_info.labels(model=state.model_id, device=str(engine.device),
                                        dtype=engine.dtype_name).set(1)
        scheduler.start()
        state.ready = True
        logger.info("ready", extra={"fields": {"model": state.model_id, "device": str(engine.device),
                                               "dtype": engine.dtype_name}})
        try:
            yield
        finally:
            state.ready = False
            scheduler.stop()

    app = FastAPI(title="attnserve", version=__version__, lifespan=lifespan,
                  description="Text generation (TGI-compatible, SSE streaming), embeddings (TEI-compatible) "
                              "and attention maps from one PyTorch transformer.")
    app.state.attnserve = state
    install_error_handlers(app)
    install_openai_error_handlers(app)  # wraps the native handlers: /v1 paths answer in OpenAI's shape
    protected = [Depends(require_api_key)]
    if state.api_keys:  # document the Bearer scheme only when it is enforced
        protected.append(Security(bearer_scheme))
    for router in (generate.router, embed.router, attention.router, tokenize.router, openai_router):
        app.include_router(router, dependencies=protected)
    app.include_router(health.router)
    app.include_router(health.info_router, dependencies=protected)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"])
    app.add_middleware(ServingMiddleware, state=state)
    return app
