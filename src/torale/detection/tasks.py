"""Celery entry points of the detector (names and arguments live in torale.queue)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import structlog

from torale.detection.service import detect_changes as run_detection
from torale.queue import DetectChanges, DetectSnapshots, SnapshotRef
from torale.worker import celery_app
from torale.worker_runtime import WorkerRuntime, worker_runtime

log = structlog.get_logger(__name__)


@celery_app.task(name=DetectChanges.task_name)
def detect_changes(check_id: str, scraped_content_id: str) -> str | None:
    """Decide whether a changed snapshot matters for its query; idempotent."""
    runtime = worker_runtime()
    return runtime.run(run_detection(runtime, uuid.UUID(check_id), uuid.UUID(scraped_content_id)))


@celery_app.task(name=DetectSnapshots.task_name)
def detect_snapshots(snapshots: list[dict[str, Any]]) -> dict[str, int]:
    """Decide on a batch's changed snapshots concurrently; idempotent. Returns outcome counts."""
    runtime = worker_runtime()
    message = DetectSnapshots.model_validate({"snapshots": snapshots})
    outcomes = runtime.run(_detect_all(runtime, message.snapshots))
    return dict(Counter(outcome or "skipped" for outcome in outcomes))


async def _detect_all(runtime: WorkerRuntime, refs: list[SnapshotRef]) -> list[str | None]:
    return await asyncio.gather(*(_detect_one(runtime, ref) for ref in refs))


async def _detect_one(runtime: WorkerRuntime, ref: SnapshotRef) -> str | None:
    """One snapshot; a failure stays with its check, which the scheduler's sweep re-drives."""
    try:
        return await run_detection(runtime, ref.check_id, ref.scraped_content_id)
    except Exception:
        log.exception("detection failed; the scheduler's sweep re-drives it",
                      check_id=str(ref.check_id))  # fmt: skip
        return "error"
