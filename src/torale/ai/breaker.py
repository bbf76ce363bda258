"""A small async-safe circuit breaker for calls to flaky upstream services (LLM/embedding APIs).

After `failure_threshold` consecutive failures the circuit opens and calls are rejected at once
with `CircuitOpenError`; after `reset_timeout` seconds it half-opens and lets a limited number of
trial calls through: a success closes it, a failure re-opens it for another cool-down.

Usage::

    breaker = CircuitBreaker("openai-embeddings", failure_threshold=5, reset_timeout=30)
    result = await breaker.call(client.embeddings.create, model=..., input=...)
    # or
    async with breaker:
        result = await client.embeddings.create(...)
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

import structlog

__all__ = ["CircuitBreaker", "CircuitOpenError", "CircuitState"]

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class CircuitState(enum.Enum):
    """Where the breaker is: letting calls through, rejecting them, or probing."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """Raised instead of calling the upstream while the circuit is open (fail fast)."""

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = max(retry_after, 0.0)
        super().__init__(
            f"circuit {name!r} is open after repeated failures; "
            f"not calling the service for another {self.retry_after:.1f}s"
        )


def _always(_: BaseException) -> bool:
    return True


class CircuitBreaker:
    """Counts consecutive failures of guarded calls and short-circuits while the upstream is down.

    State lives behind a `threading.Lock` held only for bookkeeping (never across an await), so
    one breaker can be shared by coroutines on several event loops and threads.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        is_failure: Callable[[BaseException], bool] = _always,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must be >= 0")
        if half_open_max_calls < 1:
            raise ValueError("half_open_max_calls must be >= 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._is_failure = is_failure
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0

    # --- inspection -------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """Current state; an open circuit whose cool-down has elapsed reports HALF_OPEN."""
        with self._lock:
            self._maybe_half_open()
            return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures recorded since the last success."""
        with self._lock:
            return self._failures

    # --- guarded calls ----------------------------------------------------------------------

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await `fn(*args, **kwargs)` through the breaker; raises CircuitOpenError when open."""
        self.before_call()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._record_exception(exc)
            raise
        self.record_success()
        return result

    async def __aenter__(self) -> CircuitBreaker:
        self.before_call()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.record_success()
        else:
            self._record_exception(exc)

    # --- low-level protocol (for callers that cannot use `call`) ------------------------------

    def before_call(self) -> None:
        """Admit a call or raise CircuitOpenError; pair it with record_success/record_failure."""
        with self._lock:
            self._maybe_half_open()
            if self._state is CircuitState.OPEN:
                remaining = self._opened_at + self.reset_timeout - self._clock()
                raise CircuitOpenError(self.name, remaining)
            if self._state is CircuitState.HALF_OPEN:
                if self._trials >= self.half_open_max_calls:
                    raise CircuitOpenError(self.name, 0.0)
                self._trials += 1

    def record_success(self) -> None:
        """The admitted call worked: reset the failure count and close the circuit."""
        with self._lock:
            if self._state is not CircuitState.CLOSED:
                log.info("circuit_closed", breaker=self.name)
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._trials = 0

    def record_failure(self) -> None:
        """The admitted call failed: count it, and open the circuit at the threshold."""
        with self._lock:
            self._failures += 1
            if self._state is CircuitState.OPEN:  # a late straggler; keep the cool-down as is
                return
            if self._state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
                log.warning(
                    "circuit_opened",
                    breaker=self.name,
                    consecutive_failures=self._failures,
                    cool_down_s=self.reset_timeout,
                )
                self._state = CircuitState.OPEN
                self._opened_at = self._clock()
                self._trials = 0

    def release(self) -> None:
        """The admitted call ended without a verdict (e.g. cancelled): free its trial slot."""
        with self._lock:
            if self._state is CircuitState.HALF_OPEN and self._trials > 0:
                self._trials -= 1

    def reset(self) -> None:
        """Force the circuit closed and forget past failures (tests, admin actions)."""
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._trials = 0

    # --- internals --------------------------------------------------------------------------

    def _record_exception(self, exc: BaseException) -> None:
        if not isinstance(exc, Exception):  # cancellation, KeyboardInterrupt: no verdict
            self.release()
        elif self._is_failure(exc):
            self.record_failure()
        else:  # the upstream answered (e.g. a 400): it is reachable
            self.record_success()

    def _maybe_half_open(self) -> None:
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._state = CircuitState.HALF_OPEN
            self._trials = 0
            log.info("circuit_half_open", breaker=self.name)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value})"
