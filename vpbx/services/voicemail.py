"""Voicemail by e-mail: the outbox in the store, a spool of WAV copies, and SMTP delivery.

Rule: a recorded message is never lost. The worker copies the recording into the spool dir (atomic write) before it
does anything else, and marks a message delivered only after the SMTP server accepted it; every failure only
records attempts / last_error / next_attempt_at (exponential backoff, 5 s doubling up to 10 min) and the message is
tried again later. Delivery is at least once: a crash between the server's "250 OK" and the database update sends
the message again, with the same Message-ID so mail clients can tell.

    build_message(...) -> EmailMessage       pure, CRLF line endings (email.policy.SMTP)
    send(smtp, msg)                          blocking smtplib; raises DeliveryError
    await deliver_pending(store, fetch, smtp, delete) -> delivered count
    VoicemailSender(...).run()               the engine's loop; wake() pokes it; retry_now(store) resets backoff
"""
from __future__ import annotations

import asyncio
import contextlib
import email.policy
import email.utils
import hashlib
import json
import logging
import re
import smtplib
import ssl
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Awaitable, Callable, ContextManager, Iterator, Sequence, Union

from vpbx.config import SmtpSettings, atomic_write
from vpbx.domain.errors import ValidationError, VpbxError
from vpbx.storage.store import Store

log = logging.getLogger(__name__)

SMTP_TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 600.0
# how long one delivery attempt may hold a message before another sender may take it over
CLAIM_LEASE_S = 300.0
SPOOL_DIR_NAME = "voicemail-spool"
SECURITY_MODES = ("none", "starttls", "tls")

Fetch = Callable[[str], Awaitable[bytes]]
Delete = Callable[[str], Awaitable[None]]
StoreSource = Union[Store, Callable[[], ContextManager[Store]]]


class DeliveryError(VpbxError):
    """The SMTP server could not be reached or refused the message (the message stays in the outbox)."""


# ---------------------------------------------------------------------------------------------------------- message

def _as_datetime(value: str | datetime) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _one_line(value: str) -> str:
    """Header-safe text: caller IDs come from the network and may carry control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def _file_part(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9+_.-]", "_", value).strip(".") or "unknown"


def format_duration(seconds: float) -> str:
    total = max(0, int(round(seconds)))
    return f"{total // 60}:{total % 60:02d}"


def attachment_name(number: str, created_at: str | datetime) -> str:
    """e.g. `voicemail-+380441234567-20261122-013300.wav` (UTC time)."""
    return f"voicemail-{_file_part(number)}-{_as_datetime(created_at):%Y%m%d-%H%M%S}.wav"


def build_message(cfg_smtp: SmtpSettings, number: str, caller: str, recipients: Sequence[str],
                  created_at: str | datetime, duration: float, wav_bytes: bytes, recording_name: str) -> EmailMessage:
    """The e-mail for one message: subject and body name the called number, caller ID, time and duration; the WAV
    is attached as audio/wav. Pure (no I/O); the policy makes every line end in CRLF."""
    if not recipients:
        raise ValidationError(f"voicemail {recording_name} for {number} has no recipient; "
                              f"set one with `vpbx number set {number} --vm-email ADDRESS`")
    when = _as_datetime(created_at)
    caller_shown = _one_line(caller) or "unknown caller"
    number_shown = _one_line(number)
    length = format_duration(duration)
    stamp = f"{when:%Y-%m-%d %H:%M:%S} UTC"
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = f"Voicemail for {number_shown} from {caller_shown} ({length})"
    msg["From"] = cfg_smtp.sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = email.utils.format_datetime(when)
    domain = cfg_smtp.sender.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = f"<vpbx-voicemail-{hashlib.sha256(recording_name.encode()).hexdigest()[:32]}@{domain}>"
    msg["X-Vpbx-Recording"] = _one_line(recording_name)
    msg.set_content(
        f"New voicemail message.\n\n"
        f"Called number: {number_shown}\n"
        f"Caller ID:     {caller_shown}\n"
        f"Time:          {stamp}\n"
        f"Duration:      {length} ({duration:.1f} s)\n\n"
        f"The recording is attached ({attachment_name(number, when)}).\n")
    msg.add_attachment(wav_bytes, maintype="audio", subtype="wav", filename=attachment_name(number, when))
    return msg


# ------------------------------------------------------------------------------------------------------------- SMTP

def send(smtp: SmtpSettings, msg: EmailMessage, *,
         context: ssl.SSLContext | None = None) -> dict[str, tuple[int, bytes]]:
    """Send `msg` through the configured server (blocking, timeout 10 s). Returns the recipients the server refused
    while accepting others (empty normally); raises DeliveryError when nothing was accepted."""
    where = f"SMTP server {smtp.host or '(none)'}:{smtp.port} ({smtp.security})"
    if not smtp.host:
        raise DeliveryError("SMTP is not configured; set host (and port, security, user, password, sender) "
                            "in the [smtp] section of vpbx.toml")
    if smtp.security not in SECURITY_MODES:
        raise DeliveryError(f"[smtp] security {smtp.security!r} is not valid; use none, starttls or tls")
    ctx = context or ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=SMTP_TIMEOUT_S, context=ctx)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=SMTP_TIMEOUT_S)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=ctx)
            if smtp.user:
                client.login(smtp.user, smtp.password)
            return client.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"{where} refused the login of {smtp.user!r} ({_smtp_reason(exc)}); "
                            f"check [smtp] user and password in vpbx.toml") from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"{where}: {exc}; check [smtp] security (none | starttls | tls) in vpbx.toml") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(f"{addr} ({_smtp_reason(err)})" for addr, err in exc.recipients.items())
        raise DeliveryError(f"{where} refused every recipient: {refused}; check the number's --vm-email") from exc
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"{where} failed: {_smtp_reason(exc)}") from exc
    except ssl.SSLError as exc:
        raise DeliveryError(f"{where}: TLS failed ({exc}); check [smtp] security and port in vpbx.toml") from exc
    except OSError as exc:  # refused, unreachable, DNS, timeout
        raise DeliveryError(f"{where} unreachable ({exc.strerror or exc or type(exc).__name__}); "
                            f"check [smtp] host and port in vpbx.toml") from exc


def _smtp_reason(exc: BaseException) -> str:
    code, text = getattr(exc, "smtp_code", None), getattr(exc, "smtp_error", None)
    if isinstance(exc, tuple):
        code, text = exc
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f"{code} {text}" if code else (str(text or exc) or type(exc).__name__)


# ----------------------------------------------------------------------------------------------------------- outbox

def backoff_seconds(attempts: int) -> float:
    """Delay after the `attempts`-th failed attempt: 5 s, 10 s, 20 s ... at most 10 min."""
    return min(BACKOFF_FIRST_S * 2 ** max(0, min(attempts - 1, 20)), BACKOFF_MAX_S)


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def spool_dir_for(store: Store) -> Path:
    db = store.database_path()
    if db is None:
        raise ValidationError("an in-memory database has no voicemail spool dir; pass spool_dir explicitly")
    return db.parent / SPOOL_DIR_NAME


def spool_path(spool_dir: Path, recording: str) -> Path:
    """`<spool>/<recording>.wav`; a recording name that is not a plain file name is replaced by its hash."""
    safe = recording if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}", recording) else \
        "x-" + hashlib.sha256(recording.encode()).hexdigest()
    return spool_dir / f"{safe}.wav"


@contextlib.contextmanager
def _opened(source: StoreSource) -> Iterator[Store]:
    if isinstance(source, Store):
        yield source
    else:
        with source() as store:
            yield store


async def deliver_pending(store: StoreSource, fetch: Fetch, smtp: SmtpSettings, delete: Delete | None = None,
                          now: datetime | None = None, *, spool_dir: Path | None = None,
                          context: ssl.SSLContext | None = None) -> int:
    """One pass over the outbox: every undelivered message that is due is spooled, e-mailed and marked delivered
    (then Asterisk's copy and the spool copy are deleted). Returns how many were delivered. `store` is a Store or a
    factory returning a context manager of one (opened for this pass); `fetch(recording)` returns the WAV bytes
    (production: AriClient.stored_file), `delete(recording)` removes Asterisk's copy (AriClient.delete_stored)."""
    delivered = 0
    with _opened(store) as st:
        spool = spool_dir or spool_dir_for(st)
        start = now or datetime.now(timezone.utc)
        for row in st.outbox.due_voicemails(_iso(start)):
            if await _deliver_one(st, row["recording"], fetch, smtp, delete, start, spool, context):
                delivered += 1
    return delivered


async def _deliver_one(st: Store, recording: str, fetch: Fetch, smtp: SmtpSettings, delete: Delete | None,
                       now: datetime, spool: Path, context: ssl.SSLContext | None) -> bool:
    row = st.outbox.claim_voicemail(recording, _iso(now), _iso(now + timedelta(seconds=CLAIM_LEASE_S)))
    if row is None:  # delivered meanwhile, or another sender holds it
        return False
    path = spool_path(spool, recording)
    try:
        if path.exists():
            wav = path.read_bytes()
        else:
            try:
                wav = await fetch(recording)
            except Exception as exc:
                raise DeliveryError(f"cannot fetch recording {recording} from Asterisk ({exc})") from exc
            if not wav:
                raise DeliveryError(f"recording {recording} fetched from Asterisk is empty")
            atomic_write(path, wav, mode=0o600)  # from here on Asterisk's copy may go: nothing is lost
        msg = build_message(smtp, row["number"], row["caller"], _emails(row["emails"]), row["created_at"],
                            float(row["duration"]), wav, recording)
        refused = await asyncio.to_thread(send, smtp, msg, context=context)
    except Exception as exc:
        attempts = int(row["attempts"]) + 1
        retry_at = now + timedelta(seconds=backoff_seconds(attempts))
        error = str(exc) if isinstance(exc, (VpbxError, OSError)) else f"internal error: {exc!r}"
        st.outbox.mark_voicemail_failed(recording, error, _iso(retry_at))
        log.warning("voicemail %s: attempt %d failed, next at %s: %s", recording, attempts, _iso(retry_at), error,
                    exc_info=not isinstance(exc, (VpbxError, OSError)))
        return False
    except BaseException:  # cancelled (engine stopping): give the claim back so the next start retries at once
        with contextlib.suppress(Exception):
            st.outbox.retry_voicemails(recording)
        raise
    note = None
    if refused:
        note = "refused by the SMTP server: " + ", ".join(f"{a} ({_smtp_reason(e)})" for a, e in refused.items())
        log.warning("voicemail %s: %s", recording, note)
    st.outbox.mark_voicemail_delivered(recording, _iso(datetime.now(timezone.utc)), note)
    log.info("voicemail %s delivered to %s", recording, row["emails"])
    if delete is not None:
        try:
            await delete(recording)
        except Exception as exc:  # delivered is delivered; Asterisk's copy is only left behind
            log.warning("voicemail %s: delivered, but deleting Asterisk's copy failed: %s", recording, exc)
    path.unlink(missing_ok=True)
    return True


def _emails(value: str | Sequence[str]) -> list[str]:
    return list(json.loads(value) if isinstance(value, str) else value)


def retry_now(store: Store, recording: str | None = None) -> int:
    """`vpbx voicemail retry`: make undelivered messages (all, or one) due now, ignoring their backoff."""
    return store.outbox.retry_voicemails(recording)


# ----------------------------------------------------------------------------------------------------------- sender

class VoicemailSender:
    """The engine's long-running outbox loop: a pass every `interval` seconds, or at once after wake().

        sender = VoicemailSender(store, ari.stored_file, cfg.smtp, ari.delete_stored)
        task = asyncio.create_task(sender.run())
        ...  sender.wake()   # e.g. right after store.outbox.add_voicemail(...)
        sender.stop(); await task
    """

    def __init__(self, store: StoreSource, fetch: Fetch, smtp: SmtpSettings, delete: Delete | None = None,
                 interval: float = BACKOFF_FIRST_S, *, spool_dir: Path | None = None,
                 context: ssl.SSLContext | None = None) -> None:
        self.store, self.fetch, self.smtp, self.delete = store, fetch, smtp, delete
        self.interval, self.spool_dir, self.context = interval, spool_dir, context
        self.passes = 0
        self.delivered = 0
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def retry_now(self, store: Store | None = None, recording: str | None = None) -> int:
        """Reset the backoff (of all, or one message) and run a pass now."""
        if store is not None:
            count = retry_now(store, recording)
        else:
            with _opened(self.store) as st:
                count = retry_now(st, recording)
        self.wake()
        return count

    async def run_once(self) -> int:
        delivered = await deliver_pending(self.store, self.fetch, self.smtp, self.delete,
                                          spool_dir=self.spool_dir, context=self.context)
        self.passes += 1
        self.delivered += delivered
        return delivered

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken pass (e.g. database locked for too long) must not end the loop
                log.exception("voicemail outbox pass failed; trying again in %.0f s", self.interval)
            if self._stopping:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
