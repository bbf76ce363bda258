"""Email: SendGrid's v3 API when `SENDGRID_API_KEY` is set, else SMTP (aiosmtplib).

Every message is multipart/alternative (plain text and HTML) and carries a one-click
unsubscribe (`List-Unsubscribe` + `List-Unsubscribe-Post`, RFC 8058). The Message-ID is derived
from the delivery's message id, so a resend after a lost attempt is recognisably the same mail.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

import aiosmtplib
import httpx

from torale.config import Settings
from torale.notifications.messages import Message
from torale.notifications.senders import (
    DeliveryError,
    Destination,
    SendResult,
    check_http_status,
    excerpt_of,
    read_prefix,
    transport_failure,
)


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "torale.local"


def unsubscribe_headers(message: Message) -> dict[str, str]:
    if not message.unsubscribe_url:
        return {}
    return {
        "List-Unsubscribe": f"<{message.unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def build_email(settings: Settings, to: str, message: Message) -> EmailMessage:
    """The MIME message: text first, HTML as the preferred alternative."""
    email = EmailMessage()
    email["From"] = formataddr((settings.email_from_name, settings.email_from))
    email["To"] = to
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False, usegmt=True)
    email["Message-ID"] = f"<{message.message_id}@{_domain(settings.email_from)}>"
    email["Auto-Submitted"] = "auto-generated"
    for name, value in unsubscribe_headers(message).items():
        email[name] = value
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    return email


async def send_email(
    client: httpx.AsyncClient, settings: Settings, destination: Destination, message: Message
) -> SendResult:
    to = str(destination.config.get("address", ""))
    if not to:
        raise DeliveryError("this email channel has no address", retryable=False)
    if settings.sendgrid_api_key is not None:
        return await _send_sendgrid(client, settings, to, message)
    if settings.smtp_host:
        return await _send_smtp(settings, to, message)
    raise DeliveryError(
        "email is not configured: set SENDGRID_API_KEY or TORALE_SMTP_HOST", retryable=False
    )


async def _send_sendgrid(
    client: httpx.AsyncClient, settings: Settings, to: str, message: Message
) -> SendResult:
    assert settings.sendgrid_api_key is not None
    payload: dict[str, Any] = {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": settings.email_from, "name": settings.email_from_name},
        "subject": message.subject,
        "content": [
            {"type": "text/plain", "value": message.text},
            {"type": "text/html", "value": message.html},
        ],
        "custom_args": {"torale_message_id": message.message_id},
    }
    headers = unsubscribe_headers(message)
    if headers:
        payload["headers"] = headers
    url = str(settings.sendgrid_base_url).rstrip("/") + "/v3/mail/send"
    timeout = settings.email_timeout
    request = client.build_request(
        "POST",
        url,
        json=payload,
        headers={
            "Authorization": f"Bearer {settings.sendgrid_api_key.get_secret_value()}",
            "Accept": "application/json",
        },
        timeout=httpx.Timeout(timeout),
    )
    try:
        async with asyncio.timeout(timeout):
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                prefix = await read_prefix(response)
            finally:
                await response.aclose()
    except (httpx.HTTPError, TimeoutError, OSError, ValueError) as exc:
        raise transport_failure(exc, "SendGrid", timeout) from None
    return check_http_status(response.status_code, response.headers, prefix, "SendGrid")


async def _send_smtp(settings: Settings, to: str, message: Message) -> SendResult:
    email = build_email(settings, to, message)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        _, reply = await aiosmtplib.send(
            email,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            use_tls=settings.smtp_ssl,
            start_tls=None if settings.smtp_ssl else settings.smtp_starttls,
            timeout=settings.email_timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients[0] if exc.recipients else None
        code = refused.code if refused else None
        raise DeliveryError(
            f"the mail server refused the recipient ({code})",
            retryable=bool(code and 400 <= code < 500),
            response_code=code,
            excerpt=excerpt_of(refused.message if refused else None),
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"the mail server answered {exc.code}",
            retryable=400 <= exc.code < 500,
            response_code=exc.code,
            excerpt=excerpt_of(exc.message),
        ) from None
    except aiosmtplib.SMTPNotSupported as exc:
        raise DeliveryError(f"the mail server cannot do this: {exc}", retryable=False) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise transport_failure(exc, "the mail server", settings.email_timeout) from None
    return SendResult(response_code=250, excerpt=excerpt_of(reply))  # DATA was accepted
