"""A real SMTP server for tests (aiosmtpd) that catches every mail sent to it.

The portal talks to it through Django's SMTP backend exactly as it would to
the organisation's mail server; tests read the caught mails and follow their
links. The fixture `mail_catcher` (es4ps_testkit.plugins.mail) gives one per test session.

    def test_x(mail_catcher):
        env = {**mail_catcher.portal_env, ...}            # ES4PS_SMTP_* for the portal
        mail = mail_catcher.wait_for("ada@acme.example")  # the first mail to that address
        mail.link("/verify/")                             # the portal link in its text
"""

from __future__ import annotations

import email
import email.policy
import re
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from es4ps_localcluster.processes import free_port

_URL_RE = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class CaughtMail:
    """One mail as the SMTP server received it."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage
    received_at: float

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The plain-text body."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""

    def links(self) -> list[str]:
        """Every URL in the plain-text body, in order."""
        return _URL_RE.findall(self.text)

    def link(self, containing: str) -> str:
        """The first URL in the text that contains `containing`; AssertionError if there is none."""
        for url in self.links():
            if containing in url:
                return url
        raise AssertionError(f"no link containing {containing!r} in the mail {self.subject!r}:\n{self.text}")


class _Handler:
    def __init__(self, catcher: MailCatcher) -> None:
        self.catcher = catcher

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content or b"", policy=email.policy.default)
        self.catcher._add(CaughtMail(envelope.mail_from, tuple(envelope.rcpt_tos), message, time.time()))
        return "250 Message accepted for delivery"


class MailCatcher:
    """An SMTP server on `host` (default 127.0.0.1; a free port) that keeps every mail in memory.

    With `tls_context` it offers STARTTLS (and then requires it before mail).
    """

    def __init__(self, tls_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port(host)
        self.starttls = tls_context is not None
        kwargs = {"tls_context": tls_context, "require_starttls": True} if tls_context else {}
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        self._mails: list[CaughtMail] = []
        self._changed = threading.Condition()

    @property
    def portal_env(self) -> dict[str, str]:
        """The portal's mail variables pointing at this server."""
        return {
            "ES4PS_EMAIL_BACKEND": "smtp",
            "ES4PS_SMTP_HOST": self.host,
            "ES4PS_SMTP_PORT": str(self.port),
            "ES4PS_SMTP_SECURITY": "starttls" if self.starttls else "none",
            "ES4PS_MAIL_FROM": "ES4PS test <accounts@portal.test>",
        }

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def _add(self, mail: CaughtMail) -> None:
        with self._changed:
            self._mails.append(mail)
            self._changed.notify_all()

    def mails_to(self, recipient: str) -> list[CaughtMail]:
        """Every mail caught so far for `recipient` (compared case-insensitively), oldest first."""
        with self._changed:
            return [m for m in self._mails if recipient.casefold() in (r.casefold() for r in m.recipients)]

    def wait_for(self, recipient: str, count: int = 1, timeout_s: float = 60) -> CaughtMail:
        """Wait until `count` mails reached `recipient` and return the newest; AssertionError on timeout.

        60 s: mail leaves through the portal's outbox, two polling loops off the request path
        (the registration form's, then the relay's), slower on a loaded machine.
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.mails_to(recipient)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no mail #{count} to {recipient} within {timeout_s:.0f} s")
                self._changed.wait(remaining)
            return self.mails_to(recipient)[-1]
