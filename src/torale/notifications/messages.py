"""What a notification says: subject, plain-text and HTML bodies (Jinja2), and the webhook event.

Page text in alerts is untrusted: every HTML template is autoescaped, links are only rendered
for http(s) URLs, and subjects are flattened to one line.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel

from torale.config import Settings
from torale.db.models import ChangeAlert
from torale.gateway.schemas import AlertOut
from torale.notifications import links

MAX_CHANGES = 10
MAX_CHANGE_CHARS = 1500
SEVERITY_LABEL = {"low": "Low", "medium": "Medium", "high": "High"}


_templates = Environment(
    loader=PackageLoader("torale.notifications", "templates"),
    # everything is escaped except the plain-text bodies (.txt), which are never HTML
    autoescape=select_autoescape(
        disabled_extensions=("txt",), default=True, default_for_string=True
    ),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render_page(name: str, **context: Any) -> str:
    """A small HTML page for the no-login links (unsubscribe, verify)."""
    return _templates.get_template(name).render(**context)


class WebhookEvent(BaseModel):
    """The Standard Webhooks body: `{"type", "timestamp", "data"}`."""

    type: str
    timestamp: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class AlertView:
    """An alert as the API returns it, with the words and link a message shows."""

    alert: AlertOut
    query: str
    source_url: str | None


@dataclass(frozen=True)
class Message:
    """One rendered notification; identical on every attempt (the webhook signature is not)."""

    kind: str  # alert | digest | test | verification
    message_id: str
    subject: str
    text: str
    html: str
    event_type: str | None  # the webhook `type`; None for email-only messages
    occurred_at: datetime
    data: dict[str, Any]
    unsubscribe_url: str | None

    def webhook_body(self) -> bytes:
        event = WebhookEvent(
            type=self.event_type or self.kind, timestamp=self.occurred_at, data=self.data
        )
        return event.model_dump_json().encode()


def alert_out(alert: ChangeAlert) -> AlertOut:
    """The alert exactly as `GET /api/v1/alerts/{id}` returns it."""
    return AlertOut(
        id=alert.id,
        query_id=alert.user_query_id,
        source_id=alert.monitored_source_id,
        check_id=alert.check_id,
        severity=alert.severity,
        score=alert.score,
        summary=alert.summary,
        details=dict(alert.details or {}),
        created_at=alert.created_at,
        acknowledged_at=alert.acknowledged_at,
    )


def one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _http_url(value: Any) -> str | None:
    """Only http(s) URLs become links (no `javascript:` from page data)."""
    if not isinstance(value, str):
        return None
    try:
        scheme = urlsplit(value.strip()).scheme.lower()
    except ValueError:
        return None
    return value.strip() if scheme in ("http", "https") else None


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return text if len(text) <= MAX_CHANGE_CHARS else text[:MAX_CHANGE_CHARS].rstrip() + " …"


def _changes(details: dict[str, Any]) -> list[dict[str, str]]:
    raw = details.get("changes")
    if not isinstance(raw, list):
        return []
    changes = []
    for item in raw[:MAX_CHANGES]:
        if isinstance(item, dict):
            kind = item.get("kind")
            changes.append(
                {
                    "kind": kind if kind in ("added", "modified", "removed") else "changed",
                    "before": _clip(item.get("before")),
                    "after": _clip(item.get("after")),
                }
            )
    return changes


def _alert_context(settings: Settings, view: AlertView) -> dict[str, Any]:
    alert = view.alert
    return {
        "query": view.query,
        "severity": alert.severity,
        "severity_label": SEVERITY_LABEL.get(alert.severity, alert.severity),
        "summary": alert.summary,
        "changes": _changes(alert.details),
        "source_url": _http_url(alert.details.get("url")) or _http_url(view.source_url),
        "alert_url": links.alert_url(settings, alert.id),
        "created_at": alert.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _render(name: str, context: dict[str, Any]) -> tuple[str, str]:
    text = _templates.get_template(f"{name}.txt").render(**context)
    html = _templates.get_template(f"{name}.html").render(**context)
    return text, html


def _footer(settings: Settings, channel_id: uuid.UUID) -> dict[str, Any]:
    return {
        "unsubscribe_url": links.unsubscribe_url(settings, channel_id),
        "settings_url": links.settings_url(settings),
    }


def render_alert(
    settings: Settings, view: AlertView, channel_id: uuid.UUID, message_id: str
) -> Message:
    context = {**_alert_context(settings, view), **_footer(settings, channel_id)}
    text, html = _render("alert", context)
    label = SEVERITY_LABEL.get(view.alert.severity, view.alert.severity)
    return Message(
        kind="alert",
        message_id=message_id,
        subject=one_line(f"[Torale] {label}: {view.query}", 140),
        text=text,
        html=html,
        event_type="alert.created",
        occurred_at=view.alert.created_at,
        data=view.alert.model_dump(mode="json"),
        unsubscribe_url=context["unsubscribe_url"],
    )


def render_digest(
    settings: Settings,
    views: list[AlertView],
    channel_id: uuid.UUID,
    message_id: str,
    created_at: datetime,
) -> Message:
    context = {
        "alerts": [_alert_context(settings, view) for view in views],
        "count": len(views),
        **_footer(settings, channel_id),
    }
    text, html = _render("digest", context)
    noun = "alert" if len(views) == 1 else "alerts"
    return Message(
        kind="digest",
        message_id=message_id,
        subject=f"[Torale] Your digest: {len(views)} {noun}",
        text=text,
        html=html,
        event_type="alert.digest",
        occurred_at=created_at,
        data={"alerts": [view.alert.model_dump(mode="json") for view in views]},
        unsubscribe_url=context["unsubscribe_url"],
    )


def render_test(
    settings: Settings, channel_id: uuid.UUID, message_id: str, created_at: datetime
) -> Message:
    context = _footer(settings, channel_id)
    text, html = _render("test", context)
    return Message(
        kind="test",
        message_id=message_id,
        subject="[Torale] Test notification",
        text=text,
        html=html,
        event_type="notification.test",
        occurred_at=created_at,
        data={
            "channel_id": str(channel_id),
            "message": "This is a test notification from Torale.",
        },
        unsubscribe_url=context["unsubscribe_url"],
    )


def render_verification(
    settings: Settings, channel_id: uuid.UUID, message_id: str, code: str, created_at: datetime
) -> Message:
    context = {
        "code": code,
        "verify_url": links.verify_url(settings, channel_id, code),
        **_footer(settings, channel_id),
    }
    text, html = _render("verification", context)
    return Message(
        kind="verification",
        message_id=message_id,
        subject="[Torale] Confirm your email address",
        text=text,
        html=html,
        event_type=None,
        occurred_at=created_at,
        data={},
        unsubscribe_url=context["unsubscribe_url"],
    )
