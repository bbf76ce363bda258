"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it accepts.

from tests.fakes.smtp import FakeSMTP

with FakeSMTP() as smtp:                   # smtp.host, smtp.port
    ...                                    # send mail to it
    (mail,) = smtp.wait_for(1)             # [Received(mail_from, rcpt_tos, message)]
    mail.message["Subject"]                # an email.message.EmailMessage (policy.default)
    smtp.reject_next(451, "try later")     # the next DATA gets this reply instead of 250
    smtp.clear()
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any, cast

from aiosmtpd.controller import Controller

from tests.live import free_port

__all__ = ["FakeSMTP", "Received"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class _Handler:
    def __init__(self, server: FakeSMTP) -> None:
        self._server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self._server._accept(envelope)


class FakeSMTP:
    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._rejections: list[str] = []
        self._controller: Controller | None = None

    def start(self) -> FakeSMTP:
        self.port = free_port()
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FakeSMTP:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def reject_next(self, code: int, text: str) -> None:
        with self._lock:
            self._rejections.append(f"{code} {text}")

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._rejections.clear()

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.received if address in m.rcpt_tos]

    def wait_for(self, count: int, *, to: str | None = None, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.to(to) if to else self.received
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def _accept(self, envelope: Any) -> str:
        with self._lock:
            if self._rejections:
                return self._rejections.pop(0)
            raw = bytes(envelope.original_content or envelope.content)
            message = cast(EmailMessage, message_from_bytes(raw, policy=policy.default))
            self._received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), raw, message)
            )
        return "250 Message accepted for delivery"
