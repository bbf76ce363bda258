"""The scheduler's Celery task: beat sends a tick every few seconds; a worker runs it."""

from __future__ import annotations

from torale.queue import SchedulerTick
from torale.scheduler.service import tick as run_tick
from torale.worker import celery_app
from torale.worker_runtime import worker_runtime


@celery_app.task(name=SchedulerTick.task_name, ignore_result=True)
def tick() -> dict[str, int]:
    runtime = worker_runtime()
    report = runtime.run(run_tick(runtime))
    return {
        "dispatched": report.dispatched,
        "redriven": report.redriven,
        "abandoned": report.abandoned,
    }
