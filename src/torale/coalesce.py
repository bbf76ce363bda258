"""Coalesce concurrent calls on one event loop into batched calls of one function.

    finish = Coalescer(finish_many)          # async def finish_many(items: list[T]) -> list[R]
    result = await finish(item)              # from many coroutines at once

While a batch runs, later calls wait and go together into the next one, so the batch size
follows the load: alone, a call runs at once; under load, one round trip (or one forward pass)
serves everything that piled up. A failing batch fails each of its callers, no one else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Batches `await coalescer(item)` calls made on one event loop into `run(items)` calls."""

    def __init__(
        self, run: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int = 256
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._run = run
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # callers started in the same step join the first batch
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                live = [(item, future) for item, future in batch if not future.done()]
                if not live:
                    continue
                try:
                    results = await self._run([item for item, _ in live])
                except Exception as exc:
                    for _, future in live:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # cancelled: so are the callers waiting on this batch
                    for _, future in live:
                        future.cancel()
                    raise
                if len(results) != len(live):
                    error = RuntimeError(f"batch of {len(live)} returned {len(results)} results")
                    for _, future in live:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(live, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._drainer = None
            for _, future in self._pending:  # only when cancelled mid-batch
                if not future.done():
                    future.cancel()
            self._pending.clear()
