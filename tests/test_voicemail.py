"""Voicemail by e-mail through the one outbox (vpbx.services.outbox, vpbx.engine.outbox_sender) against a real SMTP
server (aiosmtpd on 127.0.0.1) and a real SQLite store.

`fetch` stands in for ARI's GET /recordings/stored/{name}/file (real Asterisk is exercised in the engine tests).
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import io
import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiosmtpd.smtp import AuthResult, LoginPassword

from smtptools import Smtp, free_port
from vpbx.config import SmtpSettings
from vpbx.domain.errors import VpbxError
from vpbx.engine.outbox_sender import OutboxSender, deliver_pending
from vpbx.services.outbox import (
    BACKOFF_MAX_S,
    DeliveryError,
    attachment_name,
    backoff_seconds,
    retry_now,
    send,
    spool_path,
)
from vpbx.services.outbox import build_voicemail_message as build_message
from vpbx.storage.store import Store

NUMBER = "+380441234567"
CALLER = "+14155550123"
REC = "vm-call1"
T0 = datetime(2026, 11, 22, 1, 33, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------------ helpers

def wav_bytes(seconds: float = 2.5, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


WAV = wav_bytes()


def settings(port: int, **kw: Any) -> SmtpSettings:
    return SmtpSettings(**{"host": "127.0.0.1", "port": port, "sender": "pbx@example.com", **kw})


class FakeAri:
    """Asterisk's stored recordings, as the outbox sees them through fetch/delete."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.fetched: list[str] = []
        self.deleted: list[str] = []

    async def fetch(self, name: str) -> bytes:
        self.fetched.append(name)
        if name not in self.files:
            raise VpbxError(f"404 recording {name} not found")
        return self.files[name]

    async def delete(self, name: str) -> None:
        self.deleted.append(name)
        self.files.pop(name, None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "vpbx.db") as st:
        yield st


def add_vm(store: Store, rec: str = REC, emails: tuple[str, ...] = ("office@example.com",)) -> None:
    store.outbox.queue_voicemail(rec, "call1", NUMBER, CALLER, emails, 2.5)


def vm_row(store: Store, rec: str = REC) -> dict[str, Any]:
    """The message's outbox row (attempts, last_error, next_attempt_at, leased_until, delivered_at...)."""
    message = store.outbox.find_voicemail(rec)
    assert message is not None, f"{rec} is not in the outbox"
    return asdict(message)


def parse(envelope: Any) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.original_content, policy=email.policy.default)


def attachment(msg: email.message.EmailMessage) -> tuple[str, bytes]:
    (part,) = list(msg.iter_attachments())
    assert part.get_content_type() == "audio/wav"
    return part.get_filename(), part.get_content()


# ------------------------------------------------------------------------------------------------- the message

def test_build_message_fields_attachment_and_crlf() -> None:
    msg = build_message(settings(25), NUMBER, CALLER, ["a@example.com", "b@example.com"], "2026-11-22T01:33:00+00:00",
                        65.4, WAV, REC)
    assert msg["Subject"] == f"Voicemail for {NUMBER} from {CALLER} (1:05)"
    assert msg["To"] == "a@example.com, b@example.com"
    assert msg["From"] == "pbx@example.com"
    body = msg.get_body(("plain",)).get_content()
    for text in (NUMBER, CALLER, "2026-11-22 01:33:00 UTC", "1:05 (65.4 s)"):
        assert text in body
    name, data = attachment(msg)
    assert name == "voicemail-+380441234567-20261122-013300.wav" == attachment_name(NUMBER, T0)
    assert data == WAV
    raw = msg.as_bytes()
    assert b"\r\n" in raw and raw.count(b"\n") == raw.count(b"\r\n"), "every line must end in CRLF"
    # the same recording always gets the same Message-ID (a re-send after a crash is recognisable)
    again = build_message(settings(25), NUMBER, CALLER, ["a@example.com"], T0, 65.4, WAV, REC)
    assert again["Message-ID"] == msg["Message-ID"]


def test_build_message_hostile_caller_id_cannot_inject_headers() -> None:
    msg = build_message(settings(25), NUMBER, "evil\r\nBcc: victim@example.com", ["a@example.com"], T0, 3, WAV, REC)
    assert msg["Bcc"] is None
    assert "\n" not in msg["Subject"]
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None


def test_build_message_unknown_caller_and_no_recipient() -> None:
    msg = build_message(settings(25), NUMBER, "", ["a@example.com"], T0, 3, WAV, REC)
    assert "unknown caller" in msg["Subject"]
    with pytest.raises(VpbxError, match="--vm-email"):
        build_message(settings(25), NUMBER, CALLER, [], T0, 3, WAV, REC)


def test_backoff_doubles_from_5_s_up_to_10_min() -> None:
    assert [backoff_seconds(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 320, 600]
    assert backoff_seconds(100) == BACKOFF_MAX_S == 600


def test_migration_adds_next_attempt_at(store: Store) -> None:
    assert "m004_voicemail_retry" in store.schema_version()
    add_vm(store)
    assert vm_row(store)["next_attempt_at"] is None
    assert store.database_path() is not None and store.database_path().name == "vpbx.db"


# --------------------------------------------------------------------------------------------- real SMTP server

def test_delivered_to_real_smtp_with_wav_soundfile_reads(store: Store, tmp_path: Path) -> None:
    port = free_port()
    ari = FakeAri({REC: WAV})
    add_vm(store, emails=("office@example.com", "boss@example.com"))
    with Smtp(port) as server:
        assert asyncio.run(deliver_pending(store, ari.fetch, settings(port), ari.delete)) == 1
    (env,) = server.messages
    assert sorted(env.rcpt_tos) == ["boss@example.com", "office@example.com"]
    assert env.mail_from == "pbx@example.com"
    msg = parse(env)
    assert NUMBER in msg["Subject"] and CALLER in msg["Subject"] and "0:02" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert NUMBER in body and CALLER in body and "UTC" in body and "2.5 s" in body
    name, data = attachment(msg)
    assert name.startswith(f"voicemail-{NUMBER}-") and name.endswith(".wav")
    audio, rate = sf.read(io.BytesIO(data))
    info = sf.info(io.BytesIO(data))
    assert (rate, info.channels) == (8000, 1)
    assert abs(len(audio) / rate - 2.5) < 0.01
    row = vm_row(store)
    assert row["delivered_at"] and row["attempts"] == 1 and row["last_error"] is None
    assert ari.fetched == [REC] and ari.deleted == [REC]
    assert not spool_path(tmp_path / "voicemail-spool", REC).exists()
    # a second pass finds nothing to do
    assert asyncio.run(deliver_pending(store, ari.fetch, settings(port), ari.delete)) == 0


def test_smtp_down_keeps_everything_then_delivers_exactly_once(store: Store, tmp_path: Path) -> None:
    port = free_port()                      # nothing listens here yet
    ari = FakeAri({REC: WAV})
    add_vm(store)
    smtp = settings(port)
    assert asyncio.run(deliver_pending(store, ari.fetch, smtp, ari.delete, now=T0)) == 0
    row = vm_row(store)
    assert row["attempts"] == 1 and row["delivered_at"] is None
    assert "unreachable" in row["last_error"] and f"127.0.0.1:{port}" in row["last_error"]
    assert row["next_attempt_at"] == (T0 + timedelta(seconds=5)).isoformat(timespec="seconds")
    spooled = spool_path(tmp_path / "voicemail-spool", REC)
    assert spooled.read_bytes() == WAV, "the recording is in the spool before anything else"
    assert ari.deleted == [], "Asterisk's copy stays until delivered"
    assert store.outbox.list_voicemails(undelivered_only=True)[0]["recording"] == REC

    # not due yet: nothing happens
    assert asyncio.run(deliver_pending(store, ari.fetch, smtp, ari.delete, now=T0 + timedelta(seconds=2))) == 0
    assert vm_row(store)["attempts"] == 1
    # due, still down: attempts 2, backoff 10 s
    assert asyncio.run(deliver_pending(store, ari.fetch, smtp, ari.delete, now=T0 + timedelta(seconds=5))) == 0
    row = vm_row(store)
    assert row["attempts"] == 2
    assert row["next_attempt_at"] == (T0 + timedelta(seconds=15)).isoformat(timespec="seconds")

    ari.files.clear()                       # Asterisk lost its copy meanwhile: the spool still has it
    with Smtp(port) as server:
        later = T0 + timedelta(seconds=15)
        assert asyncio.run(deliver_pending(store, ari.fetch, smtp, ari.delete, now=later)) == 1
        assert asyncio.run(deliver_pending(store, ari.fetch, smtp, ari.delete, now=later + timedelta(hours=1))) == 0
    assert len(server.messages) == 1, "delivered exactly once"
    assert attachment(parse(server.messages[0]))[1] == WAV
    row = vm_row(store)
    assert row["delivered_at"] and row["attempts"] == 3 and row["last_error"] is None
    assert ari.fetched == [REC], "fetched once; later attempts used the spool"
    assert ari.deleted == [REC]
    assert not spooled.exists()


def test_fetch_failure_is_recorded_and_retried(store: Store, tmp_path: Path) -> None:
    port = free_port()
    ari = FakeAri({})                       # Asterisk does not have it (yet / unreachable)
    add_vm(store)
    with Smtp(port) as server:
        assert asyncio.run(deliver_pending(store, ari.fetch, settings(port), ari.delete, now=T0)) == 0
        row = vm_row(store)
        assert row["attempts"] == 1 and "cannot fetch recording" in row["last_error"]
        assert not spool_path(tmp_path / "voicemail-spool", REC).exists()
        ari.files[REC] = WAV
        assert asyncio.run(deliver_pending(store, ari.fetch, settings(port), ari.delete,
                                           now=T0 + timedelta(seconds=5))) == 1
    assert len(server.messages) == 1


def test_retry_now_resets_backoff(store: Store) -> None:
    port = free_port()
    ari = FakeAri({REC: WAV})
    add_vm(store)
    for attempt in range(6):                # backoff grows to 160 s
        asyncio.run(deliver_pending(store, ari.fetch, settings(port), ari.delete, now=T0 + timedelta(hours=attempt)))
    assert vm_row(store)["attempts"] == 6
    with Smtp(port) as server:
        soon = T0 + timedelta(hours=5, seconds=1)
        assert asyncio.run(deliver_pending(store, ari.fetch, settings(port), ari.delete, now=soon)) == 0
        assert retry_now(store) == 1
        assert asyncio.run(deliver_pending(store, ari.fetch, settings(port), ari.delete, now=soon)) == 1
    assert len(server.messages) == 1
    assert retry_now(store) == 0            # nothing undelivered left
    with pytest.raises(VpbxError, match="voicemail list"):
        retry_now(store, "voicemail", "no-such-recording")


def test_two_senders_at_once_send_once(tmp_path: Path) -> None:
    port = free_port()
    ari = FakeAri({REC: WAV})
    with Store.open(tmp_path / "vpbx.db") as a, Store.open(tmp_path / "vpbx.db") as b:
        add_vm(a)

        async def both() -> list[int]:
            return list(await asyncio.gather(deliver_pending(a, ari.fetch, settings(port), ari.delete),
                                             deliver_pending(b, ari.fetch, settings(port), ari.delete)))

        with Smtp(port) as server:
            assert sorted(asyncio.run(both())) == [0, 1]
    assert len(server.messages) == 1


def test_store_factory_is_opened_per_pass(tmp_path: Path) -> None:
    port = free_port()
    ari = FakeAri({REC: WAV})
    db = tmp_path / "vpbx.db"
    with Store.open(db) as st:
        add_vm(st)
    with Smtp(port) as server:
        assert asyncio.run(deliver_pending(lambda: Store.open(db), ari.fetch, settings(port), ari.delete)) == 1
    assert len(server.messages) == 1


def test_partially_refused_recipients_delivered_with_note(store: Store) -> None:
    port = free_port()
    ari = FakeAri({REC: WAV})
    add_vm(store, emails=("office@example.com", "gone@example.com"))
    with Smtp(port, refuse=("gone@example.com",)) as server:
        assert asyncio.run(deliver_pending(store, ari.fetch, settings(port), ari.delete)) == 1
    assert server.messages[0].rcpt_tos == ["office@example.com"]
    row = vm_row(store)
    assert row["delivered_at"] and "gone@example.com" in row["last_error"]


def test_every_recipient_refused_is_a_failure(store: Store) -> None:
    port = free_port()
    ari = FakeAri({REC: WAV})
    add_vm(store, emails=("gone@example.com",))
    with Smtp(port, refuse=("gone@example.com",)) as server:
        assert asyncio.run(deliver_pending(store, ari.fetch, settings(port), ari.delete)) == 0
    assert server.messages == []
    row = vm_row(store)
    assert row["delivered_at"] is None and "refused every recipient" in row["last_error"]


def test_smtp_not_configured_is_a_clear_failure(store: Store) -> None:
    ari = FakeAri({REC: WAV})
    add_vm(store)
    assert asyncio.run(deliver_pending(store, ari.fetch, SmtpSettings(), ari.delete)) == 0
    assert "[smtp]" in vm_row(store)["last_error"]


# ------------------------------------------------------------------------------------------------ login and TLS

def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"pbx", b"s3cret-pass")
    return AuthResult(success=ok, handled=False)   # handled=False: aiosmtpd answers 535 itself


def test_login(store: Store) -> None:
    port = free_port()
    msg = build_message(settings(port), NUMBER, CALLER, ["a@example.com"], T0, 2.5, WAV, REC)
    with Smtp(port, authenticator=_authenticator, auth_require_tls=False) as server:
        assert send(settings(port, user="pbx", password="s3cret-pass"), msg) == {}
        with pytest.raises(DeliveryError, match=r"refused the login of 'pbx'.*password"):
            send(settings(port, user="pbx", password="wrong"), msg)
    assert len(server.messages) == 1


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed: cannot make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def _contexts(cert: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(cert[0]), str(cert[1]))
    client = ssl.create_default_context(cafile=str(cert[0]))
    return server, client


def test_starttls(store: Store, cert: tuple[Path, Path]) -> None:
    port = free_port()
    server_ctx, client_ctx = _contexts(cert)
    ari = FakeAri({REC: WAV})
    add_vm(store)
    with Smtp(port, tls_context=server_ctx, require_starttls=True, authenticator=_authenticator) as server:
        smtp = settings(port, security="starttls", user="pbx", password="s3cret-pass")
        assert asyncio.run(deliver_pending(store, ari.fetch, smtp, ari.delete, context=client_ctx)) == 1
        msg = build_message(smtp, NUMBER, CALLER, ["a@example.com"], T0, 2.5, WAV, REC)
        with pytest.raises(DeliveryError):          # plain text to a server that demands STARTTLS
            send(settings(port), msg)
        with pytest.raises(DeliveryError, match="TLS"):  # certificate not trusted
            send(smtp, msg, context=ssl.create_default_context())
    assert len(server.messages) == 1


def test_implicit_tls(cert: tuple[Path, Path]) -> None:
    port = free_port()
    server_ctx, client_ctx = _contexts(cert)
    msg = build_message(settings(port), NUMBER, CALLER, ["a@example.com"], T0, 2.5, WAV, REC)
    with Smtp(port, ssl_context=server_ctx) as server:
        send(settings(port, security="tls"), msg, context=client_ctx)
    assert len(server.messages) == 1
    assert attachment(parse(server.messages[0]))[1] == WAV


def test_bad_security_value() -> None:
    msg = build_message(settings(25), NUMBER, CALLER, ["a@example.com"], T0, 2.5, WAV, REC)
    with pytest.raises(DeliveryError, match="none, starttls or tls"):
        send(settings(25, security="ssl"), msg)


# ------------------------------------------------------------------------------------------------- the sender loop

def test_sender_loop_delivers_when_woken_and_after_smtp_returns(store: Store, tmp_path: Path) -> None:
    port = free_port()
    ari = FakeAri({REC: WAV, "vm-call2": WAV})

    async def scenario() -> tuple[int, int]:
        sender = OutboxSender(store, ari.fetch, settings(port), ari.delete, interval=30)
        task = asyncio.create_task(sender.run())
        add_vm(store)
        sender.wake()
        for _ in range(200):                 # SMTP is down: the pass fails, message kept
            await asyncio.sleep(0.02)
            if vm_row(store)["attempts"] >= 1:
                break
        assert vm_row(store)["delivered_at"] is None
        with Smtp(port) as server:
            add_vm(store, "vm-call2")
            assert await sender.retry_now() == 2   # `vpbx voicemail retry`: skip the backoff, pass at once
            for _ in range(300):
                await asyncio.sleep(0.02)
                if not store.outbox.list_voicemails(undelivered_only=True):
                    break
            sender.stop()
            await asyncio.wait_for(task, 5)
            return len(server.messages), sender.delivered

    messages, delivered = asyncio.run(scenario())
    assert (messages, delivered) == (2, 2)
    assert sorted(ari.deleted) == [REC, "vm-call2"]
    assert all(json.loads(r["emails"]) == ["office@example.com"] for r in store.outbox.list_voicemails())


def test_cancelled_pass_gives_the_message_back(store: Store) -> None:
    """Engine stopping mid-attempt: no attempt counted, no lease left behind, the next start retries at once."""
    add_vm(store)

    async def hanging_fetch(name: str) -> bytes:
        await asyncio.sleep(3600)
        return WAV

    async def scenario() -> None:
        task = asyncio.create_task(deliver_pending(store, hanging_fetch, settings(free_port())))
        await asyncio.sleep(0.1)
        assert vm_row(store)["leased_until"] is not None   # claimed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    row = vm_row(store)
    assert (row["attempts"], row["next_attempt_at"], row["leased_until"], row["delivered_at"]) == (0, None, None, None)


def test_unexpected_error_is_recorded_not_looping(store: Store) -> None:
    add_vm(store)

    async def broken_fetch(name: str) -> bytes:
        return None  # type: ignore[return-value]  # a bug in the fetcher

    assert asyncio.run(deliver_pending(store, broken_fetch, settings(free_port()), now=T0)) == 0
    row = vm_row(store)
    assert row["attempts"] == 1 and row["last_error"] and row["next_attempt_at"] > T0.isoformat()
