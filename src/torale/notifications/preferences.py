"""Notification preferences: the user's defaults, per-monitor overrides, and what they decide
(minimum severity, which channels, digest or immediate, quiet hours)."""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from torale.db.models import NotificationChannel, NotificationPreference, UserQuery
from torale.errors import NotFound, ValidationFailed
from torale.notifications import schemas

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
DEFAULT_MIN_SEVERITY = "low"
_QUERY_ONLY_FIELDS = ("min_severity", "channel_ids")


@dataclass(frozen=True)
class Effective:
    """The preferences that apply to one alert."""

    min_severity: str
    channel_ids: frozenset[uuid.UUID] | None  # None: every enabled channel
    mode: str
    digest_hour: int
    timezone: zoneinfo.ZoneInfo
    quiet_start: time | None
    quiet_end: time | None

    def wants(self, severity: str) -> bool:
        return SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK[self.min_severity]

    def picks(self, channel_id: uuid.UUID) -> bool:
        return self.channel_ids is None or channel_id in self.channel_ids


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The user's zone; UTC if the stored name is unknown to this machine's tz database."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def effective(
    default: NotificationPreference | None, override: NotificationPreference | None
) -> Effective:
    """Overrides pick channels and minimum severity; everything else is the user's default."""
    min_severity = (default.min_severity if default else None) or DEFAULT_MIN_SEVERITY
    channel_ids = default.channel_ids if default else None
    if override is not None:
        min_severity = override.min_severity or min_severity
        if override.channel_ids is not None:
            channel_ids = override.channel_ids
    return Effective(
        min_severity=min_severity,
        channel_ids=frozenset(channel_ids) if channel_ids is not None else None,
        mode=default.mode if default else "immediate",
        digest_hour=default.digest_hour if default else 8,
        timezone=zone(default.timezone if default else "UTC"),
        quiet_start=default.quiet_hours_start if default else None,
        quiet_end=default.quiet_hours_end if default else None,
    )


def quiet_until(now: datetime, prefs: Effective) -> datetime | None:
    """The end of the quiet period `now` falls in, or None outside quiet hours."""
    start, end = prefs.quiet_start, prefs.quiet_end
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(prefs.timezone)
    clock = local.time().replace(tzinfo=None)
    today = local.date()
    if start < end:
        inside, end_day = start <= clock < end, today
    elif clock >= start:  # the window wraps midnight: evening part
        inside, end_day = True, today + timedelta(days=1)
    else:  # morning part
        inside, end_day = clock < end, today
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=prefs.timezone)


def digest_slot(now: datetime, tz: zoneinfo.ZoneInfo, hour: int) -> tuple[datetime, date]:
    """Today's digest time in the user's zone, and that local date."""
    local_day = now.astimezone(tz).date()
    return datetime.combine(local_day, time(hour), tzinfo=tz), local_day


async def load(
    session: AsyncSession, user_id: uuid.UUID
) -> tuple[NotificationPreference | None, dict[uuid.UUID, NotificationPreference]]:
    """The user's default row and overrides by query id (any session that can see them)."""
    rows = (
        await session.scalars(
            select(NotificationPreference)
            .where(NotificationPreference.user_id == user_id)
            .execution_options(populate_existing=True)
        )
    ).all()
    default = next((row for row in rows if row.user_query_id is None), None)
    overrides = {row.user_query_id: row for row in rows if row.user_query_id is not None}
    return default, overrides


# ------------------------------------------------------------------ the API (as the user)


def _quiet(row: NotificationPreference | None) -> schemas.QuietHours | None:
    if row is None or row.quiet_hours_start is None or row.quiet_hours_end is None:
        return None
    return schemas.QuietHours(
        start=row.quiet_hours_start.strftime("%H:%M"), end=row.quiet_hours_end.strftime("%H:%M")
    )


def _default_out(row: NotificationPreference | None) -> schemas.NotificationPreferences:
    return schemas.NotificationPreferences(
        min_severity=(row.min_severity if row else None) or DEFAULT_MIN_SEVERITY,
        mode=row.mode if row else "immediate",
        digest_hour=row.digest_hour if row else 8,
        timezone=row.timezone if row else "UTC",
        quiet_hours=_quiet(row),
        channel_ids=row.channel_ids if row else None,
        updated_at=row.updated_at if row else None,
    )


def _query_out(
    query_id: uuid.UUID,
    default: NotificationPreference | None,
    override: NotificationPreference | None,
) -> schemas.QueryNotificationPreferences:
    applied = effective(default, override)
    return schemas.QueryNotificationPreferences(
        query_id=query_id,
        min_severity=override.min_severity if override else None,
        channel_ids=override.channel_ids if override else None,
        effective_min_severity=applied.min_severity,
        effective_channel_ids=sorted(applied.channel_ids, key=str)
        if applied.channel_ids is not None
        else None,
        updated_at=override.updated_at if override else None,
    )


async def _require_query(session: AsyncSession, query_id: uuid.UUID) -> None:
    if await session.get(UserQuery, query_id) is None:
        raise NotFound(f"monitor {query_id} not found")


async def _check_channels(session: AsyncSession, channel_ids: list[uuid.UUID] | None) -> None:
    if not channel_ids:
        return
    found = await session.scalar(
        select(func.count())
        .select_from(NotificationChannel)
        .where(NotificationChannel.id.in_(set(channel_ids)))
    )
    if (found or 0) != len(set(channel_ids)):
        raise ValidationFailed.field("channel_ids", "names a channel that is not yours")


async def get_preferences(
    session: AsyncSession, user_id: uuid.UUID, query_id: uuid.UUID | None
) -> schemas.NotificationPreferences | schemas.QueryNotificationPreferences:
    if query_id is not None:
        await _require_query(session, query_id)
    default, overrides = await load(session, user_id)
    if query_id is None:
        return _default_out(default)
    return _query_out(query_id, default, overrides.get(query_id))


async def put_preferences(
    session: AsyncSession,
    user_id: uuid.UUID,
    query_id: uuid.UUID | None,
    body: schemas.PreferencesUpdate,
) -> schemas.NotificationPreferences | schemas.QueryNotificationPreferences:
    """Set the fields given (omitted ones keep their value); a monitor's override takes only
    `min_severity` and `channel_ids`, where null means "inherit the default"."""
    given = body.model_fields_set
    await _check_channels(session, body.channel_ids)
    values: dict[str, object] = {}
    if query_id is not None:
        await _require_query(session, query_id)
        misplaced = sorted(given - set(_QUERY_ONLY_FIELDS))
        if misplaced:
            raise ValidationFailed.field(
                misplaced[0], "is set in your default preferences, not per monitor"
            )
        values = {field: getattr(body, field) for field in given}
        insert_values = {"min_severity": None, **values}
    else:
        for field in ("min_severity", "mode", "digest_hour", "timezone"):
            if field in given:
                if getattr(body, field) is None:
                    raise ValidationFailed.field(field, "may not be null")
                values[field] = getattr(body, field)
        if "channel_ids" in given:
            values["channel_ids"] = body.channel_ids
        if "quiet_hours" in given:
            quiet = body.quiet_hours
            values["quiet_hours_start"] = time.fromisoformat(quiet.start) if quiet else None
            values["quiet_hours_end"] = time.fromisoformat(quiet.end) if quiet else None
        insert_values = dict(values)
    statement = insert(NotificationPreference).values(
        user_id=user_id, user_query_id=query_id, **insert_values
    )
    if values:
        statement = statement.on_conflict_do_update(
            index_elements=["user_id", "user_query_id"], set_=values
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["user_id", "user_query_id"])
    await session.execute(statement)
    return await get_preferences(session, user_id, query_id)
