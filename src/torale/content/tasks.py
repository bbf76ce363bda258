"""Celery entry points of the content worker (names and arguments live in torale.queue)."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from torale.content.service import check_source as run_check
from torale.content.service import check_sources as run_checks
from torale.queue import CheckSource, CheckSources
from torale.worker import celery_app
from torale.worker_runtime import worker_runtime


@celery_app.task(name=CheckSource.task_name)
def check_source(source_id: str, check_id: str) -> str | None:
    """Fetch a source and store its snapshot; re-running a finished check changes nothing."""
    runtime = worker_runtime()
    return runtime.run(run_check(runtime, uuid.UUID(source_id), uuid.UUID(check_id)))


@celery_app.task(name=CheckSources.task_name)
def check_sources(checks: list[dict[str, Any]]) -> dict[str, int]:
    """Run a batch of checks concurrently; re-running it changes nothing. Returns outcome counts."""
    runtime = worker_runtime()
    message = CheckSources.model_validate({"checks": checks})
    outcomes = runtime.run(run_checks(runtime, [ref.check_id for ref in message.checks]))
    return dict(Counter(outcome or "skipped" for outcome in outcomes.values()))
