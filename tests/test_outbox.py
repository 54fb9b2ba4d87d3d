"""The one e-mail outbox for notices (connection, waitlist) as well as voicemail: lease, backoff, one delivery with two
senders, header-safe composition, and the engine's sender never blocking its event loop. A real SMTP server (aiosmtpd
on 127.0.0.1) and real SQLite files; voicemail's own delivery tests are in test_voicemail.py.
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_voicemail import WAV, FakeAri, settings

from smtptools import Smtp, free_port
from vpbx.domain.errors import ValidationError
from vpbx.engine.outbox_sender import OutboxSender, deliver_pending
from vpbx.services import outbox
from vpbx.services.outbox import CLAIM_LEASE_S, DeliveryError, build_notice_message, compose, deliver_notices
from vpbx.storage.outbox import OutboxMessage
from vpbx.storage.store import Store

T0 = datetime(2026, 11, 22, 1, 33, 0, tzinfo=UTC)
ACME = "acme@example.com"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "vpbx.db"
    Store.open(path).close()
    return path


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store.open(db) as st:
        yield st


def notice(store: Store, message_id: int) -> OutboxMessage:
    message = store.outbox.get(message_id)
    assert message is not None
    return message


def iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


# ---- queueing and the message ---------------------------------------------------------------------------------
def test_queue_notice_refuses_header_breaking_values_and_queues_nothing(store: Store) -> None:
    for recipient, subject in ((f"{ACME}\n", "Hello"), (f"{ACME}\r\nBcc: victim@example.com", "Hello"),
                               ("not-an-address", "Hello"), (ACME, "Hello\nBcc: victim@example.com"),
                               (ACME, "Hello\u2028there"), (ACME, ""), (ACME, "x" * 256)):
        with pytest.raises(ValidationError):
            outbox.queue_notice(store, recipient, subject, "body\n")
    assert store.outbox.messages() == []
    message_id = outbox.queue_notice(store, ACME, "Number +74951234567 is connected", "Body.\n")
    assert store.outbox.list_notices() == [{
        "id": message_id, "recipient": ACME, "subject": "Number +74951234567 is connected", "body": "Body.\n",
        "created_at": notice(store, message_id).created_at, "sent_at": None, "attempts": 0, "last_error": None}]


def test_notice_message_headers_crlf_and_utf8_body() -> None:
    msg = build_notice_message(settings(25), 7, [ACME], "Номер +74951234567 подключён", "Город: Москва\n", T0)
    assert (msg["From"], msg["To"], msg["Subject"]) == ("pbx@example.com", ACME, "Номер +74951234567 подключён")
    assert msg["Date"] == "Sun, 22 Nov 2026 01:33:00 +0000"
    assert msg["Message-ID"].startswith("<vpbx-notice-") and msg["Message-ID"].endswith("@example.com>")
    raw = msg.as_bytes()
    assert raw.count(b"\n") == raw.count(b"\r\n"), "every line must end in CRLF"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Номер +74951234567 подключён"
    assert parsed.get_content().splitlines() == ["Город: Москва"]
    # the same notice always gets the same Message-ID (a re-send after a crash is recognisable)
    assert build_notice_message(settings(25), 7, [ACME], "x", "y", T0)["Message-ID"] == msg["Message-ID"]


def test_a_hostile_row_is_never_sent_only_recorded(store: Store) -> None:
    """A row that bypassed queue_notice (an old database, a bug) cannot inject headers: composing it fails."""
    with store.write():
        store.conn.execute("INSERT INTO outbox (kind, recipients, subject, body, created_at) VALUES "
                           "('notice', ?, 'Hi', 'Body', ?)", [json.dumps([f"{ACME}\nBcc: victim@example.com"]),
                                                               iso(T0)])
    port = free_port()
    with Smtp(port) as server:
        assert deliver_notices(store, settings(port), now=T0) == {"sent": 0, "failed": 1}
    assert server.messages == []
    (message,) = store.outbox.messages()
    assert message.attempts == 1 and message.delivered_at is None and "e-mail address" in (message.last_error or "")


def test_bad_sender_and_bad_kind_are_clear_errors(store: Store) -> None:
    message_id = outbox.queue_notice(store, ACME, "Hi", "Body\n")
    with pytest.raises(DeliveryError, match=r"\[smtp\] sender"):
        compose(settings(25, sender="pbx@example.com\r\nBcc: victim@example.com"), notice(store, message_id))
    assert compose(settings(25, sender="vpbx@localhost"), notice(store, message_id))["From"] == "vpbx@localhost"
    with pytest.raises(ValidationError, match="outbox kind"):
        outbox.retry_now(store, "fax")


# ---- lease and backoff for notices ----------------------------------------------------------------------------
def test_notice_smtp_down_keeps_it_with_backoff_then_delivers_exactly_once(store: Store) -> None:
    port = free_port()                         # nothing listens here yet
    message_id = outbox.queue_notice(store, ACME, "A number you wait for is available: +74951234567", "Order it.\n")
    smtp = settings(port)
    assert deliver_notices(store, smtp, now=T0) == {"sent": 0, "failed": 1}
    n = notice(store, message_id)
    assert (n.attempts, n.delivered_at, n.leased_until) == (1, None, None)
    assert "unreachable" in (n.last_error or "") and f"127.0.0.1:{port}" in (n.last_error or "")
    assert n.next_attempt_at == iso(T0 + timedelta(seconds=5))
    assert store.outbox.list_notices(unsent_only=True)[0]["attempts"] == 1

    assert deliver_notices(store, smtp, now=T0 + timedelta(seconds=2)) == {"sent": 0, "failed": 0}   # backing off
    assert notice(store, message_id).attempts == 1
    assert deliver_notices(store, smtp, now=T0 + timedelta(seconds=5)) == {"sent": 0, "failed": 1}
    n = notice(store, message_id)
    assert (n.attempts, n.next_attempt_at) == (2, iso(T0 + timedelta(seconds=15)))

    with Smtp(port) as server:
        assert deliver_notices(store, smtp, now=T0 + timedelta(seconds=10)) == {"sent": 0, "failed": 0}
        assert deliver_notices(store, smtp, now=T0 + timedelta(seconds=15)) == {"sent": 1, "failed": 0}
        assert deliver_notices(store, smtp, now=T0 + timedelta(hours=1)) == {"sent": 0, "failed": 0}
        outbox.retry_now(store)                # nothing undelivered is left to make due
        assert deliver_notices(store, smtp) == {"sent": 0, "failed": 0}
    assert server.subjects() == ["A number you wait for is available: +74951234567"]
    n = notice(store, message_id)
    assert n.delivered_at and n.attempts == 3 and n.last_error is None and n.next_attempt_at is None
    assert store.outbox.list_notices()[0]["sent_at"] == n.delivered_at


def test_retry_now_ends_the_backoff_but_never_breaks_a_lease(db: Path) -> None:
    with Store.open(db) as a, Store.open(db) as b:
        first = outbox.queue_notice(a, ACME, "First", "1\n")
        outbox.queue_notice(a, ACME, "Second", "2\n")
        held = outbox.claim(a, first, T0)      # sender A is trying `first` right now
        assert held is not None and held.leased_until == iso(T0 + timedelta(seconds=CLAIM_LEASE_S))
        assert outbox.claim(b, first, T0) is None, "a held message cannot be claimed twice"
        assert outbox.retry_now(b, "notice") == 2
        port = free_port()
        with Smtp(port) as server:
            assert deliver_notices(b, settings(port), now=T0) == {"sent": 1, "failed": 0}
            assert server.subjects() == ["Second"], "B left A's message to A"
            outbox.release(a, held)            # A stops without trying: due again at once, no attempt counted
            assert notice(a, first).attempts == 0
            assert deliver_notices(b, settings(port), now=T0) == {"sent": 1, "failed": 0}
        assert server.subjects() == ["Second", "First"]
        # a lease that outlived its sender (a crash) expires: the message is taken over after CLAIM_LEASE_S
        third = outbox.queue_notice(a, ACME, "Third", "3\n")
        assert outbox.claim(a, third, T0) is not None
        assert outbox.claim(b, third, T0 + timedelta(seconds=CLAIM_LEASE_S - 1)) is None
        assert outbox.claim(b, third, T0 + timedelta(seconds=CLAIM_LEASE_S)) is not None


def test_two_senders_at_once_send_each_notice_once(db: Path) -> None:
    """Two CLI passes (own connections, own threads) and the engine's sender race over the same notices while the
    server is slow: every notice is delivered exactly once."""
    with Store.open(db) as st:
        ids = [outbox.queue_notice(st, ACME, f"Notice {i}", f"{i}\n") for i in range(6)]
    port = free_port()
    results: list[dict[str, int]] = []
    start = threading.Barrier(3)

    def cli_pass() -> None:
        with Store.open(db) as own:
            start.wait()
            results.append(deliver_notices(own, settings(port)))

    async def engine_pass() -> int:
        await asyncio.to_thread(start.wait)
        return await deliver_pending(db, FakeAri({}).fetch, settings(port))

    with Smtp(port, delay=0.05) as server:
        threads = [threading.Thread(target=cli_pass) for _ in range(2)]
        for t in threads:
            t.start()
        engine_delivered = asyncio.run(engine_pass())
        for t in threads:
            t.join(60)
    assert sorted(server.subjects()) == [f"Notice {i}" for i in range(6)], "each notice exactly once"
    assert sum(r["sent"] for r in results) + engine_delivered == 6
    assert sum(r["failed"] for r in results) == 0
    with Store.open(db) as st:
        assert all(notice(st, i).delivered_at and notice(st, i).attempts == 1 for i in ids)


# ---- the engine's sender: both kinds, off the loop ------------------------------------------------------------
def test_engine_sender_delivers_notices_and_voicemail_and_kinds_limit_it(store: Store, db: Path) -> None:
    port = free_port()
    ari = FakeAri({"vm-1": WAV})
    outbox.queue_notice(store, ACME, "Number +74951234567 is connected", "Paid.\n")
    outbox.queue_voicemail(store, "vm-1", "call-1", "+74951234567", "+14155550123", ["office@example.com"], 2.5)
    with Smtp(port) as server:
        assert asyncio.run(deliver_pending(db, ari.fetch, settings(port), ari.delete, kinds=("voicemail",))) == 1
        assert len(server.messages) == 1 and store.outbox.list_notices(unsent_only=True) != []
        assert asyncio.run(deliver_pending(db, ari.fetch, settings(port), ari.delete)) == 1
    assert sorted(server.subjects()) == ["Number +74951234567 is connected",
                                         "Voicemail for +74951234567 from +14155550123 (0:02)"]
    assert ari.deleted == ["vm-1"] and store.outbox.messages(undelivered_only=True) == []


def test_engine_sender_never_blocks_its_loop(db: Path) -> None:
    """SQLite (a write lock held by another process for 0.6 s) and SMTP (a server taking 0.6 s per message) block
    the sender's worker thread, never the event loop: a 10 ms ticker on the loop keeps ticking."""
    with Store.open(db) as st:
        for i in range(2):
            outbox.queue_notice(st, ACME, f"Notice {i}", f"{i}\n")
    opened_in: list[str] = []

    def open_store() -> Store:
        opened_in.append(threading.current_thread().name)
        return Store.open(db)

    def hold_write_lock(seconds: float) -> None:
        con = sqlite3.connect(db)
        con.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        con.execute("COMMIT")
        con.close()

    port = free_port()

    async def scenario() -> tuple[int, float]:
        sender = OutboxSender(open_store, FakeAri({}).fetch, settings(port), interval=30)
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        locker = threading.Thread(target=hold_write_lock, args=(0.6,))
        locker.start()
        await asyncio.sleep(0.05)                  # the lock is held when the pass starts
        try:
            delivered = await sender.run_once()
        finally:
            await sender.aclose()
            stop.set()
            await tick
            locker.join()
        return delivered, max(gaps)

    with Smtp(port, delay=0.6) as server:
        started = time.monotonic()
        delivered, worst_gap = asyncio.run(scenario())
        took = time.monotonic() - started
    assert delivered == 2 and len(server.messages) == 2
    assert took > 1.5, "the pass did wait for the lock and the slow server"
    assert worst_gap < 0.2, f"the event loop stalled {worst_gap * 1000:.0f} ms"
    assert opened_in and all(name.startswith("vpbx-outbox") for name in opened_in)


def test_engine_sender_needs_a_database_file() -> None:
    with Store.open(":memory:") as mem, pytest.raises(ValidationError, match="in-memory"):
        OutboxSender(mem, FakeAri({}).fetch, settings(25))


def test_stopping_the_sender_leaves_the_rest_due_and_unleased(db: Path) -> None:
    with Store.open(db) as st:
        ids = [outbox.queue_notice(st, ACME, f"Notice {i}", f"{i}\n") for i in range(4)]
    port = free_port()

    async def scenario(server: Smtp) -> None:
        sender = OutboxSender(db, FakeAri({}).fetch, settings(port), interval=30)
        task = asyncio.create_task(sender.run())
        for _ in range(500):
            await asyncio.sleep(0.01)
            if server.messages:
                break
        sender.stop()
        await asyncio.wait_for(task, 10)

    with Smtp(port, delay=0.3) as server:
        asyncio.run(scenario(server))
        sent = len(server.messages)
    assert 1 <= sent < 4
    with Store.open(db) as st:
        left = [notice(st, i) for i in ids if notice(st, i).delivered_at is None]
        assert len(left) == 4 - sent
        assert all(m.leased_until is None and m.attempts == 0 for m in left)


# ---- the CLI's flush (lifecycle.flush_mail) ---------------------------------------------------------------------
def test_flush_mail_honours_the_backoff_unless_told_to_retry_now(store: Store) -> None:
    from vpbx.config import Config
    from vpbx.services import lifecycle

    port = free_port()
    cfg = Config(smtp=settings(port))
    outbox.queue_notice(store, ACME, "Number +74951234567 is connected", "Paid.\n")
    assert lifecycle.flush_mail(store, cfg) == {"sent": 0, "failed": 1}        # server down
    with Smtp(port) as server:
        assert lifecycle.flush_mail(store, cfg) == {"sent": 0, "failed": 0}    # backing off: not tried
        assert lifecycle.flush_mail(store, cfg, ignore_backoff=True) == {"sent": 1, "failed": 0}
        assert lifecycle.flush_mail(store, cfg, ignore_backoff=True) == {"sent": 0, "failed": 0}
    assert server.subjects() == ["Number +74951234567 is connected"]
    assert store.outbox.list_notices()[0]["attempts"] == 2
