"""A real SMTP server for the e-mail tests (outbox, voicemail, CLI notices): aiosmtpd on 127.0.0.1, keeping every
message it accepts.

    port = free_port()
    with Smtp(port) as server:          # Smtp(port, delay=0.3), Smtp(port, refuse=(...,)), Smtp(port, tls_context=...)
        ...
    assert server.subjects() == [...]
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """aiosmtpd handler keeping every accepted message; refuses recipients listed in `refuse`; accepts each message
    `delay` seconds after its DATA (the server runs in its own thread and loop)."""

    def __init__(self, refuse: tuple[str, ...] = (), delay: float = 0.0) -> None:
        self.messages: list[Any] = []
        self.refuse = refuse
        self.delay = delay

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append(envelope)
        return "250 Message accepted"


class Smtp:
    """The server on 127.0.0.1:port while in the `with` block; `controller` takes aiosmtpd's Controller options
    (authenticator, tls_context, require_starttls, ssl_context, ...)."""

    def __init__(self, port: int, *, delay: float = 0.0, refuse: tuple[str, ...] = (), **controller: Any) -> None:
        self.port = port
        self.handler = Collector(refuse, delay)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port, **controller)

    def __enter__(self) -> Smtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Any]:
        """The accepted envelopes, in order."""
        return self.handler.messages

    def subjects(self) -> list[str]:
        return [_subject(m) for m in self.messages]

    def mails(self) -> list[tuple[str, list[str], str]]:
        """(sender, recipients, subject) of each accepted message."""
        return [(m.mail_from, list(m.rcpt_tos), _subject(m)) for m in self.messages]


def _subject(envelope: Any) -> str:
    return email.message_from_bytes(envelope.original_content, policy=email.policy.default)["Subject"]
