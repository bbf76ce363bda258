"""Celery entry point of the detector (name and arguments live in torale.queue)."""

from __future__ import annotations

import uuid

from torale.detection.service import detect_changes as run_detection
from torale.queue import DetectChanges
from torale.worker import celery_app
from torale.worker_runtime import worker_runtime


@celery_app.task(name=DetectChanges.task_name)
def detect_changes(check_id: str, scraped_content_id: str) -> str | None:
    """Decide whether a changed snapshot matters for its query; idempotent."""
    runtime = worker_runtime()
    return runtime.run(run_detection(runtime, uuid.UUID(check_id), uuid.UUID(scraped_content_id)))
