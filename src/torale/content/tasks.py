"""Celery entry points of the content worker (names and arguments live in torale.queue)."""

from __future__ import annotations

import uuid

from torale.content.service import check_source as run_check
from torale.queue import CheckSource
from torale.worker import celery_app
from torale.worker_runtime import worker_runtime


@celery_app.task(name=CheckSource.task_name)
def check_source(source_id: str, check_id: str) -> str | None:
    """Fetch a source and store its snapshot; re-running a finished check changes nothing."""
    runtime = worker_runtime()
    return runtime.run(run_check(runtime, uuid.UUID(source_id), uuid.UUID(check_id)))
