"""The e-mail channel: a notice rendered to multipart plain text + HTML, sent over SMTP.

Rendering is pure (:func:`email_payload` builds the JSON the delivery queue stores, so a retry
sends the very same message, Message-ID included); :class:`SmtpSender` is the I/O edge
(aiosmtplib). SMTP replies decide retries: 2xx delivered, 4xx (a transient refusal) retried
with the roster's backoff, 5xx (a permanent refusal: unknown mailbox, relaying denied) recorded
as failed at once. ``starttls`` and ``tls`` verify the server's certificate and name (against the
channel's ``ca_file``, else the system's CAs); a server that offers no STARTTLS, or a certificate
that does not verify, is a failed attempt: a notice is never sent in clear instead.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from typing import Any

import aiosmtplib
import jinja2

from riskrelay.escalator.notice import Notice
from riskrelay.escalator.roster import EmailChannel


class SmtpConfigError(ValueError):
    """An e-mail channel's credentials cannot be read (stops start-up, naming the file)."""


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("riskrelay.escalator", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_text(notice: Notice) -> str:
    return _templates().get_template("notice_email.txt.j2").render(n=notice)


def render_html(notice: Notice) -> str:
    return _templates().get_template("notice_email.html.j2").render(n=notice)


def email_payload(
    notice: Notice,
    *,
    channel_name: str,
    channel: EmailChannel,
    to_name: str,
    to_address: str,
    message_id: str,
) -> dict[str, Any]:
    """What the delivery queue stores for one e-mail (``message_id`` without brackets)."""
    return {
        "server": channel_name,
        "from_name": channel.from_name,
        "from_address": channel.from_address,
        "to_name": to_name,
        "to_address": to_address,
        "subject": f"[riskrelay L{notice.level}] {notice.headline}: {notice.title}"[:250],
        "message_id": message_id,
        "text": render_text(notice),
        "html": render_html(notice),
        "risk_id": notice.risk_id,
        "escalation_id": notice.escalation_id,
    }


def email_message(payload: dict[str, Any], date: Any) -> EmailMessage:
    """The MIME message of a stored e-mail payload: text/plain with a text/html alternative."""
    message = EmailMessage()
    message["From"] = Address(payload["from_name"], addr_spec=payload["from_address"])
    message["To"] = Address(payload["to_name"], addr_spec=payload["to_address"])
    message["Subject"] = payload["subject"]
    message["Message-ID"] = f"<{payload['message_id']}>"
    message["Date"] = format_datetime(date)
    # Threads every notice of one risk together in mail clients.
    message["References"] = f"<risk.{payload['risk_id']}@riskrelay>"
    message["X-Riskrelay-Escalation"] = payload["escalation_id"]
    message["X-Riskrelay-Risk"] = payload["risk_id"]
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(payload["text"])
    message.add_alternative(payload["html"], subtype="html")
    return message


@dataclass(frozen=True)
class SmtpReply:
    """One attempt's result: the SMTP reply code (None when no reply came) and an error."""

    code: int | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code is not None and 500 <= self.code <= 599


def _tls_context(channel: EmailChannel, channel_name: str) -> ssl.SSLContext | None:
    """Certificate and host name checked (the defaults); only the ``ca_file`` CAs when given."""
    if channel.security == "none":
        return None
    try:
        return ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(channel.ca_file) if channel.ca_file is not None else None,
        )
    except (OSError, ssl.SSLError) as error:
        raise SmtpConfigError(
            f"roster channels.{channel_name}.ca_file: cannot load {channel.ca_file}:"
            f" {getattr(error, 'strerror', None) or error}"
        ) from error


def _read_secret(path: Path | None, what: str, channel_name: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise SmtpConfigError(
            f"roster channels.{channel_name}.{what}: cannot read {path}: {error.strerror or error}"
        ) from error


class SmtpSender:
    """Sends stored e-mail payloads through one configured SMTP server."""

    def __init__(self, name: str, channel: EmailChannel) -> None:
        self.name = name
        self.channel = channel
        self._username = _read_secret(channel.username_file, "username_file", name)
        self._password = _read_secret(channel.password_file, "password_file", name)
        self._tls_context = _tls_context(channel, name)

    def connection_options(self) -> dict[str, Any]:
        security = self.channel.security
        return {
            "hostname": self.channel.host,
            "port": self.channel.port,
            "use_tls": security == "tls",
            # True: STARTTLS or no delivery (None would fall back to clear text).
            "start_tls": security == "starttls",
            "tls_context": self._tls_context,
            "username": self._username,
            "password": self._password,
            "timeout": self.channel.timeout_s,
        }

    async def send(self, payload: dict[str, Any], date: Any) -> SmtpReply:
        started = time.perf_counter()
        message = email_message(payload, date)

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            responses, _ = await aiosmtplib.send(message, **self.connection_options())
        except aiosmtplib.SMTPRecipientsRefused as error:
            refusal = error.recipients[0]
            return SmtpReply(
                refusal.code, f"SMTP {refusal.code}: {refusal.message}"[:1_000], elapsed()
            )
        except aiosmtplib.SMTPResponseException as error:
            return SmtpReply(error.code, f"SMTP {error.code}: {error.message}"[:1_000], elapsed())
        except (aiosmtplib.SMTPException, OSError) as error:
            return SmtpReply(None, f"{type(error).__name__}: {error}"[:1_000], elapsed())
        del responses  # every recipient was accepted, or SMTPRecipientsRefused was raised
        return SmtpReply(250, None, elapsed())
