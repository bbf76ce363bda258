"""The scheduler's tick: dispatch due checks, and re-drive work whose queue message was lost."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import text

from torale.db.session import as_service
from torale.queue import CheckRef, CheckSource, CheckSources, DetectChanges, enqueue
from torale.worker_runtime import WorkerRuntime

log = structlog.get_logger(__name__)

DISPATCH_BATCH = 500
JITTER = 0.1  # next check at interval x (1 ± 10%), so sources added together drift apart
MAX_ATTEMPTS = 3

_DISPATCH = text(
    """
    with due as (
      select s.id, s.user_id, s.user_query_id,
             coalesce(s.check_interval_seconds, q.check_interval_seconds) as every
      from monitored_sources s join user_queries q on q.id = s.user_query_id
      where s.status = 'active' and q.status = 'active' and s.next_check_at <= now()
        and not exists (select 1 from source_checks c
                        where c.monitored_source_id = s.id and c.status in ('queued', 'running'))
      order by s.next_check_at
      limit :batch
      for update of s skip locked
    ), advanced as (
      update monitored_sources s
      set next_check_at = now() + make_interval(secs => d.every * (1 + (random() * 2 - 1) * :jitter))
      from due d where s.id = d.id
      returning s.id
    )
    insert into source_checks (user_id, user_query_id, monitored_source_id, trigger)
    select d.user_id, d.user_query_id, d.id, 'schedule' from due d join advanced a on a.id = d.id
    on conflict do nothing
    returning id, monitored_source_id
    """
)

_GIVE_UP = text(
    """
    update source_checks set status = 'failed', outcome = 'error', finished_at = now(),
      error_class = 'worker_lost',
      error = 'the check was started ' || attempts || ' times and never finished'
    where status = 'running' and started_at < now() - make_interval(secs => :running_timeout)
      and attempts >= :max_attempts
    returning id
    """
)

_REQUEUE_RUNNING = text(
    """
    update source_checks set status = 'queued', started_at = null, queued_at = now()
    where status = 'running' and started_at < now() - make_interval(secs => :running_timeout)
      and scraped_content_id is null
    returning id, monitored_source_id
    """
)

# fetched and stored, but the detector never finished: hand the snapshot to it again
_REDETECT = text(
    """
    update source_checks set started_at = now()
    where status = 'running' and started_at < now() - make_interval(secs => :running_timeout)
      and scraped_content_id is not null
    returning id, scraped_content_id
    """
)

_REQUEUE_QUEUED = text(
    """
    update source_checks set queued_at = now()
    where status = 'queued' and queued_at < now() - make_interval(secs => :queued_timeout)
    returning id, monitored_source_id
    """
)


@dataclass(frozen=True)
class TickReport:
    dispatched: int
    redriven: int
    abandoned: int


async def dispatch_due(
    runtime: WorkerRuntime, batch: int = DISPATCH_BATCH
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Create a queued check for every due source (never two in flight), then enqueue them in
    messages of `check_batch_size` checks, which a worker runs concurrently."""
    async with as_service(runtime.sessions) as session:
        rows = (await session.execute(_DISPATCH, {"batch": batch, "jitter": JITTER})).all()
    size = runtime.settings.check_batch_size
    for start in range(0, len(rows), size):
        refs = [CheckRef(source_id=source_id, check_id=check_id)
                for check_id, source_id in rows[start : start + size]]  # fmt: skip
        enqueue(runtime.celery, CheckSources(checks=refs))
    return [(row[0], row[1]) for row in rows]


async def redrive_stuck(runtime: WorkerRuntime) -> tuple[int, int]:
    """Checks whose message or worker was lost go back on the queue; hopeless ones fail."""
    running_timeout = runtime.settings.task_time_limit * 2
    queued_timeout = max(60, runtime.settings.task_time_limit)
    params = {"running_timeout": running_timeout, "queued_timeout": queued_timeout,
              "max_attempts": MAX_ATTEMPTS}  # fmt: skip
    async with as_service(runtime.sessions) as session:
        abandoned = (await session.execute(_GIVE_UP, params)).all()
        rows = [*(await session.execute(_REQUEUE_RUNNING, params)).all(),
                *(await session.execute(_REQUEUE_QUEUED, params)).all()]  # fmt: skip
        redetect = (await session.execute(_REDETECT, params)).all()
    for check_id, source_id in rows:
        enqueue(runtime.celery, CheckSource(source_id=source_id, check_id=check_id))
    for check_id, snapshot_id in redetect:
        enqueue(runtime.celery, DetectChanges(check_id=check_id, scraped_content_id=snapshot_id))
    rows += redetect
    if rows or abandoned:
        log.warning("re-drove stuck checks", requeued=len(rows), abandoned=len(abandoned))
    return len(rows), len(abandoned)


async def tick(runtime: WorkerRuntime) -> TickReport:
    from torale.notifications.service import sweep_notifications

    dispatched = await dispatch_due(runtime)
    redriven, abandoned = await redrive_stuck(runtime)
    try:  # deliveries due for a retry, lost mid-send, or digests due
        await sweep_notifications(runtime)
    except Exception:
        log.exception("notification sweep failed; the next tick tries again")
    if dispatched:
        log.info("dispatched due checks", count=len(dispatched))
    return TickReport(len(dispatched), redriven, abandoned)
