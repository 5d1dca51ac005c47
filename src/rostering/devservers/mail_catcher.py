"""A real SMTP server on loopback (aiosmtpd) that keeps every message it receives: the demo's mail catcher (`make demo`
sets `smtp_default` to it, so the alert path runs for real) and the alert tests' SMTP server."""
from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self) -> str:
        """Every text part, decoded (the notifier sends HTML)."""
        parts = [p.get_content() for p in self.message.walk() if p.get_content_maintype() == "text"]
        return "\n".join(parts)


class MailCatcher:
    """``with MailCatcher() as smtp:`` -- ``smtp.messages``; ``connection_json()`` is AIRFLOW_CONN_SMTP_DEFAULT."""

    def __init__(self) -> None:
        self.messages: list[Captured] = []
        self._lock = threading.Lock()
        self.port = _free_port()
        self.controller = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(Captured(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> "MailCatcher":
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> "MailCatcher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def connection_json(self) -> str:
        """The Airflow connection: plain SMTP on loopback (no TLS), the sender in extra.from_email."""
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"from_email": "rostering@district.example.org", "disable_ssl": True,
                                     "disable_tls": True, "timeout": 10, "retry_limit": 1}})

    def wait_for(self, count: int, timeout: float = 60) -> list[Captured]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.2)
        return list(self.messages)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
