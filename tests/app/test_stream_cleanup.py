"""A stream closed while its next output is already in hand (client gone right then; the soak test
hit this many times a minute): the generation is aborted at once, and asyncio has nothing to log."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

from app.engine import StepOutput
from app.routes.generate import with_keepalive


def run_collecting_loop_errors(coro: Any) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        await coro
        gc.collect()  # an unretrieved exception is reported when its future is collected
        await asyncio.sleep(0)

    asyncio.run(main())
    return errors


def test_closing_after_the_iterator_finished_logs_nothing() -> None:
    async def finishes_later() -> AsyncIterator[StepOutput]:
        await asyncio.sleep(0.05)
        return
        yield  # an async generator that ends without output

    async def scenario() -> None:
        stream = with_keepalive(finishes_later(), every_s=0.01)
        assert await anext(stream) is None  # a keep-alive; meanwhile the iterator finishes
        await asyncio.sleep(0.1)
        await stream.aclose()  # the client leaves now

    assert run_collecting_loop_errors(scenario()) == []


def test_closing_with_an_unread_output_closes_the_iterator_at_once() -> None:
    closed: list[bool] = []

    async def one_output_later() -> AsyncIterator[StepOutput]:
        try:
            await asyncio.sleep(0.05)
            yield StepOutput("r")
            await asyncio.sleep(10)
        finally:
            closed.append(True)  # Service._outputs aborts the request here

    async def scenario() -> None:
        stream = with_keepalive(one_output_later(), every_s=0.01)
        assert await anext(stream) is None
        await asyncio.sleep(0.1)  # the output arrives, unread
        await stream.aclose()
        assert closed == [True], "the iterator was left open (the request would run on)"

    assert run_collecting_loop_errors(scenario()) == []
