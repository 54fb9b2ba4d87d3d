"""The one e-mail outbox: what voicemail messages and notices say, and the rules that deliver them.

Rules: a queued message is never lost. A sender `claim`s a message (a lease of CLAIM_LEASE_S) before trying it, so two
senders (the engine's loop, `vpbx notices send`, a second engine) never send one message at the same time; it is
marked delivered only after the SMTP server accepted it, and every failure only records attempts / last_error /
next_attempt_at (exponential backoff, 5 s doubling up to 10 min) for a later try. Delivery is at least once: a crash
between the server's "250 OK" and the database update sends the message again, with the same Message-ID so mail
clients can tell. A voicemail carries its WAV: the engine's sender copies the recording into the spool dir (atomic
write) before anything else, so Asterisk's copy may go once it is there. Every header is built from validated values
only (addresses full-match the e-mail rule; the caller ID, which comes from the network, is flattened to one line).

Everything here blocks (SQLite, smtplib): the engine calls it in a worker thread (vpbx.engine.outbox_sender).

    queue_notice(store, recipient, subject, body) -> id      validates, then queues (inside the caller's transaction)
    queue_voicemail(store, recording, call_id, number, caller, recipients, duration)
    compose(smtp, message, wav=None) -> EmailMessage         pure; build_voicemail_message / build_notice_message
    send(smtp, msg) -> refused recipients                    smtplib with [smtp]'s settings; raises DeliveryError
    due(store, now, kinds) / claim(store, id, now)           what a pass may try / take one for an attempt
    deliver(store, smtp, message, now, wav=None) -> bool     compose + send + mark delivered or failed (claimed first)
    record_failure(store, message, exc, now) -> error text   failed before sending (e.g. the WAV could not be fetched)
    deliver_notices(store, smtp) -> {"sent", "failed"}       the CLI's pass over the due notices
    retry_now(store, kind=None, recording=None) -> count     end the backoff (`vpbx voicemail retry`, `notices send`)
"""
from __future__ import annotations

import email.policy
import email.utils
import hashlib
import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from vpbx.domain import validation
from vpbx.domain.errors import ValidationError, VpbxError
from vpbx.domain.timestamps import from_iso, to_iso, to_utc, utc_now
from vpbx.storage.outbox import KINDS, OutboxMessage

if TYPE_CHECKING:
    from vpbx.config import SmtpSettings
    from vpbx.storage.store import Store

log = logging.getLogger(__name__)

SMTP_TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 600.0
# how long one delivery attempt may hold a message before another sender may take it over
CLAIM_LEASE_S = 300.0
SPOOL_DIR_NAME = "voicemail-spool"
SECURITY_MODES = ("none", "starttls", "tls")
SUBJECT_MAX = 255
# a header-safe mailbox: one address, no spaces, controls, quotes, brackets or separators (the [smtp] sender may be
# vpbx@localhost, which the stricter rule for the addresses users type refuses)
_MAILBOX_RE = re.compile(r"\A[^\s@<>()\[\],;:\"\\]{1,64}@[^\s@<>()\[\],;:\"\\]{1,189}\Z")


class DeliveryError(VpbxError):
    """The SMTP server could not be reached or refused the message (the message stays in the outbox)."""


# ---------------------------------------------------------------------------------------------------------- queueing

def queue_notice(store: Store, recipient: str, subject: str, body: str) -> int:
    """Queue a notice to one address (joins the caller's transaction, if any); the address and the subject must be
    header-safe, which is checked now rather than when a sender first tries it."""
    if not isinstance(recipient, str) or not validation.EMAIL_RE.fullmatch(recipient) \
            or len(recipient) > validation.EMAIL_MAX:
        raise ValidationError(f"cannot e-mail {validation.shown(recipient)}: not a valid address; fix the account's "
                              "address with `vpbx account set ACCOUNT --email ADDRESS`")
    _subject(subject)
    return store.outbox.queue_notice([recipient], subject, body)


def queue_voicemail(store: Store, recording: str, call_id: str, number: str, caller: str,
                    recipients: Sequence[str], duration: float) -> None:
    """Queue a recorded message (kept until delivered, even if a recipient is bad: the sender reports that)."""
    store.outbox.queue_voicemail(recording, call_id, number, caller, recipients, duration)


# ----------------------------------------------------------------------------------------------------------- message

def _one_line(value: str) -> str:
    """Header-safe text: caller IDs come from the network and may carry control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def _file_part(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9+_.-]", "_", value).strip(".") or "unknown"


def _as_datetime(value: str | datetime) -> datetime:
    return from_iso(value) if isinstance(value, str) else to_utc(value)


def _recipients(recipients: Sequence[str], what: str) -> list[str]:
    if not recipients:
        raise ValidationError(f"{what} has no recipient")
    return [validation.email(address) for address in recipients]


def _subject(subject: str) -> str:
    if not isinstance(subject, str) or not subject or not subject.isprintable() or len(subject) > SUBJECT_MAX:
        raise ValidationError(f"subject {validation.shown(subject)} is not one printable line of 1-{SUBJECT_MAX} "
                              "characters")
    return subject


def _sender(smtp: SmtpSettings) -> str:
    if not isinstance(smtp.sender, str) or not _MAILBOX_RE.fullmatch(smtp.sender):
        raise DeliveryError(f"[smtp] sender {validation.shown(smtp.sender)} is not an e-mail address; "
                            "set sender in vpbx.toml (e.g. pbx@example.com)")
    return smtp.sender


def _message_id(smtp: SmtpSettings, kind: str, key: str) -> str:
    domain = smtp.sender.rpartition("@")[2] or "localhost"
    return f"<vpbx-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def format_duration(seconds: float) -> str:
    total = max(0, round(seconds))
    return f"{total // 60}:{total % 60:02d}"


def attachment_name(number: str, created_at: str | datetime) -> str:
    """e.g. `voicemail-+380441234567-20261122-013300.wav` (UTC time)."""
    return f"voicemail-{_file_part(number)}-{_as_datetime(created_at):%Y%m%d-%H%M%S}.wav"


def build_voicemail_message(smtp: SmtpSettings, number: str, caller: str, recipients: Sequence[str],
                            created_at: str | datetime, duration: float, wav_bytes: bytes,
                            recording_name: str) -> EmailMessage:
    """The e-mail for one voicemail message: subject and body name the called number, caller ID, time and duration;
    the WAV is attached as audio/wav. Pure (no I/O); the policy makes every line end in CRLF."""
    if not recipients:
        raise ValidationError(f"voicemail {recording_name} for {number} has no recipient; "
                              f"give the number one with `vpbx number route {number} DEST --vm-email ADDRESS`")
    to = _recipients(recipients, f"voicemail {recording_name}")
    when = _as_datetime(created_at)
    caller_shown = _one_line(caller) or "unknown caller"
    number_shown = _one_line(number)
    length = format_duration(duration)
    stamp = f"{when:%Y-%m-%d %H:%M:%S} UTC"
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = f"Voicemail for {number_shown} from {caller_shown} ({length})"
    msg["From"] = _sender(smtp)
    msg["To"] = ", ".join(to)
    msg["Date"] = email.utils.format_datetime(when)
    msg["Message-ID"] = _message_id(smtp, "voicemail", recording_name)
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


def build_notice_message(smtp: SmtpSettings, message_id: int, recipients: Sequence[str], subject: str, body: str,
                         created_at: str | datetime) -> EmailMessage:
    """The e-mail for one notice (plain text). Pure; CRLF line endings."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = _subject(subject)
    msg["From"] = _sender(smtp)
    msg["To"] = ", ".join(_recipients(recipients, f"notice {message_id}"))
    when = _as_datetime(created_at)
    msg["Date"] = email.utils.format_datetime(when)
    msg["Message-ID"] = _message_id(smtp, "notice", f"{message_id}/{to_iso(when)}")
    msg.set_content(body)
    return msg


def compose(smtp: SmtpSettings, message: OutboxMessage, wav: bytes | None = None) -> EmailMessage:
    """The e-mail an outbox message stands for; a voicemail needs its recording (`wav`)."""
    if message.kind == "voicemail":
        if wav is None or message.recording is None:
            raise ValidationError(f"voicemail {message.id} has no recording to attach")
        return build_voicemail_message(smtp, message.number or "", message.caller or "", message.recipients,
                                       message.created_at, float(message.duration or 0.0), wav, message.recording)
    return build_notice_message(smtp, message.id, message.recipients, message.subject or "", message.body or "",
                                message.created_at)


# -------------------------------------------------------------------------------------------------------------- SMTP

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
        raise DeliveryError(f"{where} refused every recipient: {refused}; check the recipients' addresses "
                            "(a number's --vm-email, an account's --email)") from exc
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"{where} failed: {_smtp_reason(exc)}") from exc
    except ssl.SSLError as exc:
        raise DeliveryError(f"{where}: TLS failed ({exc}); check [smtp] security and port in vpbx.toml") from exc
    except OSError as exc:  # refused, unreachable, DNS, timeout
        raise DeliveryError(f"{where} unreachable ({exc.strerror or exc or type(exc).__name__}); "
                            f"check [smtp] host and port in vpbx.toml") from exc


def _smtp_reason(exc: BaseException | tuple[int, bytes]) -> str:
    """`550 mailbox unavailable` from an smtplib exception or a refused recipient's (code, text)."""
    code: object
    raw: object
    if isinstance(exc, tuple):
        code, raw = exc
    else:
        code, raw = getattr(exc, "smtp_code", None), getattr(exc, "smtp_error", None)
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
    return f"{code} {text}" if code else (text or str(exc) or type(exc).__name__)


# ------------------------------------------------------------------------------------------------ delivery attempts

def backoff_seconds(attempts: int) -> float:
    """Delay after the `attempts`-th failed attempt: 5 s, 10 s, 20 s ... at most 10 min."""
    return float(min(BACKOFF_FIRST_S * 2 ** max(0, min(attempts - 1, 20)), BACKOFF_MAX_S))


def due(store: Store, now: datetime, kinds: Sequence[str] = KINDS) -> list[OutboxMessage]:
    """Undelivered messages of `kinds` that may be tried at `now` (backoff over, nobody holding them)."""
    return store.outbox.due(to_iso(now), kinds)


def claim(store: Store, message_id: int, now: datetime) -> OutboxMessage | None:
    """Take a due message for one attempt (a lease of CLAIM_LEASE_S); None if it is not there to take."""
    return store.outbox.claim(message_id, to_iso(now), to_iso(now + timedelta(seconds=CLAIM_LEASE_S)))


def release(store: Store, message: OutboxMessage) -> None:
    """Give a claimed message back untried (the sender is stopping): due again at once, no attempt counted."""
    store.outbox.release(message.id)


def describe(message: OutboxMessage) -> str:
    return f"voicemail {message.recording}" if message.kind == "voicemail" else f"notice {message.id}"


def record_failure(store: Store, message: OutboxMessage, exc: BaseException, now: datetime) -> str:
    """Count a failed attempt of a claimed message and back off; returns the error text kept in last_error."""
    attempts = message.attempts + 1
    retry_at = to_iso(now + timedelta(seconds=backoff_seconds(attempts)))
    expected = isinstance(exc, (VpbxError, OSError))
    error = str(exc) if expected else f"internal error: {exc!r}"
    store.outbox.mark_failed(message.id, error, retry_at)
    log.warning("%s: attempt %d failed, next at %s: %s", describe(message), attempts, retry_at, error,
                exc_info=None if expected else exc)
    return error


def record_delivery(store: Store, message: OutboxMessage, refused: dict[str, tuple[int, bytes]]) -> None:
    note = None
    if refused:
        note = "refused by the SMTP server: " + ", ".join(f"{a} ({_smtp_reason(e)})" for a, e in refused.items())
        log.warning("%s: %s", describe(message), note)
    store.outbox.mark_delivered(message.id, to_iso(utc_now()), note)
    log.info("%s delivered to %s", describe(message), ", ".join(message.recipients))


def deliver(store: Store, smtp: SmtpSettings, message: OutboxMessage, now: datetime, wav: bytes | None = None, *,
            context: ssl.SSLContext | None = None) -> bool:
    """One attempt at a claimed message: compose, send, then mark it delivered (True) or failed with backoff
    (False). Blocking."""
    try:
        refused = send(smtp, compose(smtp, message, wav), context=context)
    except Exception as exc:
        record_failure(store, message, exc, now)
        return False
    record_delivery(store, message, refused)
    return True


def deliver_notices(store: Store, smtp: SmtpSettings, now: datetime | None = None, *,
                    context: ssl.SSLContext | None = None) -> dict[str, int]:
    """One pass over the due notices (blocking): each is claimed, sent and marked. A notice another sender holds is
    left to it; a failure keeps the notice for a later try."""
    start = now or utc_now()
    result = {"sent": 0, "failed": 0}
    for message in due(store, start, ("notice",)):
        claimed = claim(store, message.id, start)
        if claimed is None:
            continue
        result["sent" if deliver(store, smtp, claimed, start, context=context) else "failed"] += 1
    return result


def retry_now(store: Store, kind: str | None = None, recording: str | None = None) -> int:
    """End the backoff of undelivered messages (all, of one kind, or one voicemail recording); returns how many."""
    if kind is not None and kind not in KINDS:
        raise ValidationError(f"outbox kind {validation.shown(kind)} is not one of {', '.join(KINDS)}")
    return store.outbox.make_due(kind, recording)


# ------------------------------------------------------------------------------------------------------ voicemail spool

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
