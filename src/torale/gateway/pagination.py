"""Cursor pagination, the same everywhere: newest first by (created_at, id)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_

from torale.errors import ValidationFailed

MAX_LIMIT = 200


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed.field("cursor", "is not a cursor this API returned") from exc


def newest_first(
    query: Select[Any], created_at: Any, row_id: Any, cursor: str | None, limit: int
) -> Select[Any]:
    """Order newest first and continue after the cursor's row; fetch one extra to know if more."""
    if cursor:
        at, last_id = decode_cursor(cursor)
        after: ColumnElement[bool] = or_(created_at < at, and_(created_at == at, row_id < last_id))
        query = query.where(after)
    return query.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)


def page_of(rows: list[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    """Trim the extra row and return (items, next_cursor)."""
    if len(rows) > limit:
        rows = rows[:limit]
        created_at, row_id = key(rows[-1])
        return rows, encode_cursor(created_at, row_id)
    return rows, None
