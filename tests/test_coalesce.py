"""Concurrent calls share batches; a failing batch fails only its own callers."""

from __future__ import annotations

import asyncio

import pytest

from torale.coalesce import Coalescer


async def test_concurrent_calls_share_a_batch_and_get_their_own_results() -> None:
    batches: list[list[int]] = []

    async def double(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [2 * i for i in items]

    twice = Coalescer(double, max_batch=4)
    assert await twice(1) == 2  # alone: at once, a batch of one
    results = await asyncio.gather(*(twice(i) for i in range(10)))
    assert results == [2 * i for i in range(10)]
    assert batches[0] == [1] and [len(b) for b in batches[1:]] == [4, 4, 2]


async def test_a_failing_batch_fails_its_callers_only() -> None:
    async def picky(items: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        if 13 in items:
            raise ValueError("unlucky")
        return items

    echo = Coalescer(picky, max_batch=2)
    results = await asyncio.gather(*(echo(i) for i in (13, 1, 2, 3)), return_exceptions=True)
    assert isinstance(results[0], ValueError) and isinstance(results[1], ValueError)
    assert results[2:] == [2, 3]
    assert await echo(5) == 5  # still serving


async def test_a_cancelled_caller_does_not_break_the_batch() -> None:
    async def slow(items: list[int]) -> list[int]:
        await asyncio.sleep(0.05)
        return items

    echo = Coalescer(slow)
    first = asyncio.create_task(echo(1))
    second = asyncio.create_task(echo(2))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 2
