"""The job queue: one Celery app, the queues, and every task's name and message in one place.

Producers (gateway, scheduler, workers) send by name with `enqueue`, so no service imports
another's task code; consumers register their tasks under the same names.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from celery import Celery
from kombu import Queue
from pydantic import BaseModel, ConfigDict

from torale.config import Settings

QUEUES = ("fetch", "embed", "detect", "notify", "scheduler")

# Task modules registered with the worker; each service's issue adds its own.
TASK_MODULES: list[str] = [
    "torale.content.tasks",
    "torale.detection.tasks",
    "torale.scheduler.tasks",
    "torale.notifications.tasks",
]


class TaskMessage(BaseModel):
    """A queue message: JSON-serialisable arguments of one task, with its name and queue."""

    model_config = ConfigDict(frozen=True)
    task_name: ClassVar[str]
    queue: ClassVar[str]


class CheckSource(TaskMessage):
    """Fetch a source and store its snapshot (content worker)."""

    task_name: ClassVar[str] = "torale.content.check_source"
    queue: ClassVar[str] = "fetch"
    source_id: uuid.UUID
    check_id: uuid.UUID


class CheckRef(BaseModel):
    """One queued check of a source, as carried in a batch."""

    model_config = ConfigDict(frozen=True)
    source_id: uuid.UUID
    check_id: uuid.UUID


class CheckSources(TaskMessage):
    """Check several sources concurrently in one message (the scheduler's dispatch): one claim,
    one queue hop and shared embedding passes for all of them; each check records its own
    outcome, so one failure never touches the others."""

    task_name: ClassVar[str] = "torale.content.check_sources"
    queue: ClassVar[str] = "fetch"
    checks: list[CheckRef]


class DetectChanges(TaskMessage):
    """Compare a new snapshot with earlier ones and decide on alerts: how the scheduler's sweep
    re-drives a decision that was lost (message lost, worker killed, detector failed)."""

    task_name: ClassVar[str] = "torale.detection.detect_changes"
    queue: ClassVar[str] = "detect"
    check_id: uuid.UUID
    scraped_content_id: uuid.UUID


class SnapshotRef(BaseModel):
    """One changed snapshot waiting for detection, as carried in a batch."""

    model_config = ConfigDict(frozen=True)
    check_id: uuid.UUID
    scraped_content_id: uuid.UUID


class DetectSnapshots(TaskMessage):
    """Decide on the changed snapshots of one batch of checks (the content step's handoff): one
    queue hop for the batch, detections run concurrently and share embedding passes, and each
    records its own outcome."""

    task_name: ClassVar[str] = "torale.detection.detect_snapshots"
    queue: ClassVar[str] = "detect"
    snapshots: list[SnapshotRef]


class NotifyAlert(TaskMessage):
    """Fan an alert out to the owner's channels (notification worker)."""

    task_name: ClassVar[str] = "torale.notifications.notify_alert"
    queue: ClassVar[str] = "notify"
    alert_id: uuid.UUID


class DeliverNotification(TaskMessage):
    """Send one delivery (alert x channel) and record the attempt."""

    task_name: ClassVar[str] = "torale.notifications.deliver"
    queue: ClassVar[str] = "notify"
    delivery_id: uuid.UUID


class SchedulerTick(TaskMessage):
    """Dispatch due checks and re-drive anything stuck (beat -> scheduler)."""

    task_name: ClassVar[str] = "torale.scheduler.tick"
    queue: ClassVar[str] = "scheduler"


def create_celery(settings: Settings, broker_url: str | None = None) -> Celery:
    """The Celery app: Redis broker, JSON only, late acks, time limits, one queue per step."""
    broker = broker_url or settings.redis_url or "redis://127.0.0.1:6379/0"
    app = Celery("torale", broker=broker, include=list(TASK_MODULES))
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=max(5, settings.task_time_limit - 10),
        # kombu's Redis consumer asks for more messages only when its hub wakes (up to 1 s
        # apart), and a thread pool finishing a task does not wake it: the prefetch must cover
        # that second, or threads idle while the queue grows (measured: 77 -> 375 checks/s on
        # unchanged pages, bench/throughput.py --n 1000 --unchanged)
        worker_prefetch_multiplier=16,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.task_time_limit * 4},
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="fetch",
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            "scheduler-tick": {
                "task": SchedulerTick.task_name,
                "schedule": settings.scheduler_tick_seconds,
                "options": {
                    "queue": SchedulerTick.queue,
                    "expires": settings.scheduler_tick_seconds,
                },
            }
        },
    )
    return app


def enqueue(app: Celery, message: TaskMessage, **options: Any) -> None:
    """Send a message by task name to its queue (the producer never imports the consumer)."""
    app.send_task(
        message.task_name,
        kwargs=message.model_dump(mode="json"),
        queue=message.queue,
        **options,
    )
