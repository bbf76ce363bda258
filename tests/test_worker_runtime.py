"""The worker runtime: a task's coroutine runs on the thread's loop within the time limit."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import make_runtime


def test_a_task_past_the_time_limit_is_cancelled(database_url: str, redis_url: str) -> None:
    runtime = make_runtime(database_url, redis_url)
    runtime.settings = runtime.settings.model_copy(update={"task_time_limit": 0.2})
    cancelled = False

    async def stuck() -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled = True
            raise

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        runtime.run(stuck())
    assert cancelled and time.monotonic() - started < 5
    assert runtime.run(asyncio.sleep(0, result="next task")) == "next task"  # the loop serves on
    runtime.loop.close()
