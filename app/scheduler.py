"""The scheduler: the engine loop, its queues, admission, and all the timing.

One thread owns the engine. Each turn of its loop it drops aborted requests, ends those
past their deadline, admits waiting requests into free cache slots (continuous batching),
runs one engine step, and hands the outputs to each request's sink. Between steps it
serves /embed and /attention jobs in dynamic batches (up to a size or token budget, or
until the oldest has waited max_wait).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from .engine import Batch, Engine, GenerationRequest, Sequence, StepOutput
from .metrics import Metrics

logger = logging.getLogger(__name__)

Sink = Callable[[StepOutput], None]


class Overloaded(Exception):
    """The queue is full: the caller should answer 429 with Retry-After."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Waiting:
    request: GenerationRequest
    sink: Sink
    deadline: float | None
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class Job:
    """An /embed or /attention call: a list of token-id inputs answered together."""

    kind: str  # "embed" | "attention"
    inputs: list[list[int]]
    options: dict[str, Any]
    future: Future[Any] = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)

    @property
    def tokens(self) -> int:
        return sum(len(ids) for ids in self.inputs)


@dataclass
class Limits:
    max_batch_size: int = 32
    max_batch_prefill_tokens: int = 1024
    max_queue_size: int = 128
    max_queued_tokens: int = 131072
    embed_max_batch_size: int = 64
    embed_max_batch_tokens: int = 16384
    embed_max_wait_s: float = 0.002
    stall_timeout_s: float = 60.0


class Scheduler:
    def __init__(self, engine: Engine, limits: Limits, metrics: Metrics) -> None:
        self.engine = engine
        self.limits = limits
        self.metrics = metrics
        self._cv = threading.Condition()
        self._waiting: deque[Waiting] = deque()
        self._jobs: deque[Job] = deque()
        self._aborts: set[str] = set()
        self._batch = Batch(prefill_budget=limits.max_batch_prefill_tokens)
        self._sinks: dict[str, Waiting] = {}
        self._first_token_at: dict[str, float] = {}
        self._last_token_at: dict[str, float] = {}
        self._stopping = False
        self._step_started: float | None = None
        self._thread = threading.Thread(target=self._run, name="engine-loop", daemon=True)
        self.fault_injector: Callable[[], None] | None = None  # tests: raise inside a step

    # ---- called from the event loop ----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout=10)

    def submit(self, request: GenerationRequest, sink: Sink, deadline: float | None = None) -> None:
        with self._cv:
            self._admit_or_raise(len(request.prompt_ids) + request.max_new_tokens)
            self._waiting.append(Waiting(request, sink, deadline))
            self.metrics.queue_size.set(self._queued())
            self._cv.notify()

    def submit_job(self, job: Job) -> None:
        with self._cv:
            self._admit_or_raise(job.tokens)
            self._jobs.append(job)
            self.metrics.queue_size.set(self._queued())
            self._cv.notify()

    def abort(self, request_id: str) -> None:
        """Stop generating for a request whose client left; its slot is freed at the next step."""
        with self._cv:
            self._aborts.add(request_id)
            self._cv.notify()

    def healthy(self) -> bool:
        """False if the loop died or one step has run longer than the stall timeout."""
        if not self._thread.is_alive():
            return False
        started = self._step_started
        return started is None or time.monotonic() - started < self.limits.stall_timeout_s

    def _queued(self) -> int:
        return len(self._waiting) + len(self._jobs)

    def _backlog(self) -> int:
        """Requests that will really wait: those the next step's free batch slots can't take."""
        free = max(0, self.limits.max_batch_size - len(self._batch))
        return max(0, len(self._waiting) - free) + len(self._jobs)

    def _admit_or_raise(self, tokens: int) -> None:
        if self._stopping:
            raise Overloaded("the server is shutting down", retry_after=5)
        if self._backlog() >= self.limits.max_queue_size:
            raise Overloaded(f"the queue is full ({self.limits.max_queue_size} requests waiting)")
        queued_tokens = sum(len(w.request.prompt_ids) + w.request.max_new_tokens for w in self._waiting)
        queued_tokens += sum(j.tokens for j in self._jobs)
        if queued_tokens and queued_tokens + tokens > self.limits.max_queued_tokens:
            raise Overloaded(f"too many queued tokens ({queued_tokens} waiting, limit "
                             f"{self.limits.max_queued_tokens})")

    # ---- the engine thread -------------------------------------------------------------------

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cv:
                while not self._stopping and not self._has_work():
                    self._cv.wait(timeout=self._job_wait())
                if self._stopping:
                    break
                self._drop_aborted()
                self._expire()
                self._admit()
                jobs = self._take_jobs()
            if jobs:
                self._run_jobs(jobs)
            if self._batch.sequences:
                self._run_step()
            self.metrics.queue_size.set(self._queued())
        self._fail_all("the server is shutting down")

    def _has_work(self) -> bool:
        return bool(self._batch.sequences or self._aborts or self._waiting or self._jobs_ready())

    def _jobs_ready(self) -> bool:
        if not self._jobs:
            return False
        size = len(self._jobs) >= self.limits.embed_max_batch_size
        waited = time.monotonic() - self._jobs[0].arrived >= self.limits.embed_max_wait_s
        return size or waited or bool(self._batch.sequences)

    def _job_wait(self) -> float | None:
        if not self._jobs:
            return None
        return max(0.0, self.limits.embed_max_wait_s - (time.monotonic() - self._jobs[0].arrived))

    def _drop_aborted(self) -> None:
        if not self._aborts:
            return
        kept: list[Sequence] = []
        for seq in self._batch.sequences:
            if seq.request.id in self._aborts:
                self.engine.release(seq)
                self._forget(seq.request.id)
            else:
                kept.append(seq)
        self._batch.sequences = kept
        self._waiting = deque(w for w in self._waiting if w.request.id not in self._aborts)
        self._aborts.clear()
        self._update_gauges()

    def _update_gauges(self) -> None:
        self.metrics.running.set(len(self._batch))
        self.metrics.kv_usage.set(self.engine.kv_usage(self._batch))

    def _expire(self) -> None:
        """Requests past their deadline get one last token, with finish_reason 'time_limit'."""
        now = time.monotonic()
        for seq in self._batch.sequences:
            deadline = self._sinks[seq.request.id].deadline
            if deadline is not None and now > deadline and seq.prefilled:
                seq.forced_finish = "time_limit"

    def _admit(self) -> None:
        """Continuous batching: fill free slots from the queue, oldest first."""
        while self._waiting and len(self._batch) < self.limits.max_batch_size and self.engine.free_slots():
            waiting = self._waiting.popleft()
            self._batch.sequences.append(self.engine.new_sequence(waiting.request))
            self._sinks[waiting.request.id] = waiting
            self.metrics.queue_wait.observe(time.monotonic() - waiting.arrived)

    def _take_jobs(self) -> list[Job]:
        if not self._jobs_ready():
            return []
        kind = self._jobs[0].kind
        taken: list[Job] = []
        tokens = 0
        while self._jobs and self._jobs[0].kind == kind and len(taken) < self.limits.embed_max_batch_size:
            job = self._jobs[0]
            if taken and tokens + job.tokens > self.limits.embed_max_batch_tokens:
                break
            taken.append(self._jobs.popleft())
            tokens += job.tokens
        now = time.monotonic()
        for job in taken:
            self.metrics.queue_wait.observe(now - job.arrived)
        return taken

    def _run_jobs(self, jobs: list[Job]) -> None:
        """All inputs of these jobs, shortest first (similar lengths share /attention's padded
        forward), in parts of at most embed_max_batch_size."""
        flat = [(j, i, ids) for j, job in enumerate(jobs) for i, ids in enumerate(job.inputs)]
        flat.sort(key=lambda item: len(item[2]))
        results: list[list[Any]] = [[None] * len(job.inputs) for job in jobs]
        try:
            self._step_started = time.monotonic()
            for start in range(0, len(flat), self.limits.embed_max_batch_size):
                part = flat[start: start + self.limits.embed_max_batch_size]
                self.metrics.observe_batch(len(part), sum(len(ids) for _, _, ids in part))
                inputs = [ids for _, _, ids in part]
                if jobs[0].kind == "embed":
                    out: list[Any] = self.engine.embed(inputs, [jobs[j].options["normalize"] for j, _, _ in part])
                else:
                    opts = [jobs[j].options for j, _, _ in part]
                    out = self.engine.attention(inputs, [o["layers"] for o in opts], [o["heads"] for o in opts],
                                                [o["mean_heads"] for o in opts])
                for (j, i, _), value in zip(part, out, strict=True):
                    results[j][i] = value
            for job, result in zip(jobs, results, strict=True):
                job.future.set_result(result)
        except Exception as exc:  # one bad batch fails its own jobs, not the loop
            logger.exception("%s batch failed", jobs[0].kind)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
        finally:
            self._step_started = None

    def _run_step(self) -> None:
        batch = self._batch
        newcomers = [s for s in batch.sequences if not s.prefilled]
        if newcomers and len(newcomers) < len(batch):
            # Prefill first and hand out the first tokens before the running streams' decode (the two
            # are separate forwards anyway): a newcomer's TTFT no longer includes a decode of the
            # whole batch, and the running streams wait no longer than in one combined step.
            running = [s for s in batch.sequences if s.prefilled]
            prefilled = self._step(Batch(newcomers, batch.prefill_budget))
            both = sorted(running + prefilled.sequences, key=lambda s: s.slot)
            after = self._step(Batch(both, prefill_budget=0))  # decode only: one prefill chunk per turn
            self._batch = Batch(after.sequences, batch.prefill_budget)
        else:
            self._batch = self._step(batch)
        self._update_gauges()

    def _step(self, batch: Batch) -> Batch:
        """One engine step; its outputs go to their requests. Returns the next batch (a failed
        step fails its own sequences and leaves none)."""
        tokens = self._planned_tokens(batch)
        self._step_started = time.monotonic()
        try:
            if self.fault_injector is not None:
                self.fault_injector()
            outputs, next_batch = self.engine.step(batch)
        except torch.OutOfMemoryError:
            outputs, next_batch = self._retry_smaller(batch)
        except Exception as exc:
            logger.exception("engine step failed; failing its %d requests", len(batch))
            self._fail(batch.sequences, f"generation failed: {exc}")
            return Batch(prefill_budget=batch.prefill_budget)
        finally:
            self._step_started = None
        self.metrics.observe_batch(len(batch), tokens)
        self._deliver(outputs)
        return next_batch

    def _retry_smaller(self, batch: Batch) -> tuple[list[StepOutput], Batch]:
        """Out of device memory: free what the allocator caches, then run the batch in halves."""
        logger.warning("out of memory with %d sequences; retrying in halves", len(batch))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = max(1, len(batch) // 2)
        outputs: list[StepOutput] = []
        survivors: list[Sequence] = []
        for part in (batch.sequences[:half], batch.sequences[half:]):
            if not part:
                continue
            try:
                out, nxt = self.engine.step(Batch(part, batch.prefill_budget))
            except torch.OutOfMemoryError:
                self._fail(part, "out of memory")
                continue
            outputs += out
            survivors += nxt.sequences
        return outputs, Batch(sorted(survivors, key=lambda s: s.slot), batch.prefill_budget)

    @staticmethod
    def _planned_tokens(batch: Batch) -> int:
        """Tokens this step runs through the model: one per decoding sequence plus prefill chunks."""
        decoding = sum(1 for s in batch.sequences if s.prefilled)
        pending = sum(len(s.prompt) - s.cached_len for s in batch.sequences if not s.prefilled)
        return decoding + min(pending, batch.prefill_budget)

    def _deliver(self, outputs: list[StepOutput]) -> None:
        now = time.monotonic()
        for out in outputs:
            waiting = self._sinks.get(out.request_id)
            if waiting is None:
                continue
            if out.token is not None:
                self.metrics.generated_tokens.inc()
                first = self._first_token_at.setdefault(out.request_id, now)
                if first == now:
                    self.metrics.ttft.observe(now - waiting.arrived)
                else:
                    self.metrics.itl.observe(now - self._last_token_at[out.request_id])
                self._last_token_at[out.request_id] = now
            if out.finish_reason is not None or out.error is not None:
                self._forget(out.request_id)
            waiting.sink(out)

    def _forget(self, request_id: str) -> None:
        self._sinks.pop(request_id, None)
        self._first_token_at.pop(request_id, None)
        self._last_token_at.pop(request_id, None)

    def _fail(self, seqs: list[Sequence], message: str) -> None:
        for seq in seqs:
            self.engine.release(seq)
            self._deliver([StepOutput(seq.request.id, error=message)])

    def _fail_all(self, message: str) -> None:
        with self._cv:
            self._fail(self._batch.sequences, message)
            self._batch.sequences = []
            for waiting in self._waiting:
                waiting.sink(StepOutput(waiting.request.id, error=message))
            self._waiting.clear()
            for job in self._jobs:
                job.future.set_exception(RuntimeError(message))
            self._jobs.clear()
