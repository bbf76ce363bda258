"""Celery tasks of the notification worker (queue `notify`): thin wrappers that run the
service's coroutines on the worker process's event loop."""

from __future__ import annotations

import uuid

from celery import shared_task

from torale.notifications import service
from torale.queue import DeliverNotification, NotifyAlert
from torale.worker_runtime import worker_runtime


@shared_task(name=NotifyAlert.task_name, ignore_result=True)
def notify_alert(alert_id: str) -> int:
    """Fan an alert out to deliveries (`NotifyAlert`)."""
    runtime = worker_runtime()
    return runtime.run(service.notify_alert(runtime, uuid.UUID(alert_id)))


@shared_task(name=DeliverNotification.task_name, ignore_result=True)
def deliver(delivery_id: str) -> str | None:
    """One attempt at one delivery (`DeliverNotification`)."""
    runtime = worker_runtime()
    return runtime.run(service.deliver(runtime, uuid.UUID(delivery_id)))
