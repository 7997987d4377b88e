"""An SMTP server on 127.0.0.1 that keeps every message it receives, for tests of mail.

    sink = SmtpSink().start()
    srv = Server(..., extra_env=sink.env())      # PALISADE_SMTP_HOST/PORT/SECURITY
    mail = sink.wait_for(to="alice@example.test", subject_contains="Verify")
    sink.stop()

Messages are parsed with `email.message_from_bytes`; each is a `Mail` with the envelope
recipients, the To header, the subject and the decoded plain-text body. `mark()` returns the
number of messages so far, so a test can wait only for mail that arrives after some point.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from support import free_port


@dataclass
class Mail:
    to: list[str]  # envelope recipients and To header addresses, lower-cased
    subject: str
    body: str
    mail_from: str
    raw: bytes = field(repr=False)

    def addressed_to(self, addr: str) -> bool:
        return addr.lower() in self.to


def _body_text(msg: email.message.Message) -> str:
    part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
    if part is None:
        return ""
    try:
        return part.get_content()
    except (KeyError, LookupError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace")


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        header_to = [a.addr_spec.lower() for a in getattr(msg.get("To"), "addresses", ())] if msg.get("To") else []
        recipients = sorted({r.lower() for r in envelope.rcpt_tos} | set(header_to))
        mail = Mail(
            to=recipients,
            subject=str(msg.get("Subject", "")),
            body=_body_text(msg),
            mail_from=envelope.mail_from or "",
            raw=raw,
        )
        with self.sink._cond:
            self.sink.messages.append(mail)
            self.sink._cond.notify_all()
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.messages: list[Mail] = []
        self._cond = threading.Condition()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> "SmtpSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def env(self) -> dict[str, str]:
        """The server environment that sends Palisade's mail here."""
        return {
            "PALISADE_SMTP_HOST": "127.0.0.1",
            "PALISADE_SMTP_PORT": str(self.port),
            "PALISADE_SMTP_SECURITY": "none",
        }

    def mark(self) -> int:
        with self._cond:
            return len(self.messages)

    def messages_to(self, addr: str, start: int = 0) -> list[Mail]:
        with self._cond:
            return [m for m in self.messages[start:] if m.addressed_to(addr)]

    def _matches(self, m: Mail, to: str | None, subject_contains: str | None) -> bool:
        return (to is None or m.addressed_to(to)) and (
            subject_contains is None or subject_contains.lower() in m.subject.lower()
        )

    def find(self, to: str | None = None, subject_contains: str | None = None, start: int = 0) -> list[Mail]:
        with self._cond:
            return [m for m in self.messages[start:] if self._matches(m, to, subject_contains)]

    def wait_for(self, to: str | None = None, subject_contains: str | None = None, timeout: float = 10,
                 start: int = 0) -> Mail:
        """The first message (from index `start` on) matching recipient and subject; waits for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[start:]:
                    if self._matches(m, to, subject_contains):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.to, m.subject) for m in self.messages[start:]]
                    raise AssertionError(
                        f"no mail to {to!r} with subject containing {subject_contains!r} within {timeout}s; "
                        f"received since #{start}: {seen}"
                    )
                self._cond.wait(left)
