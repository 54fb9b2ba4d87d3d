"""Accounts, money and the number lifecycle: the rules that move balances and number states.

Rules: arithmetic comes from the pure `vpbx.billing` package, SQL from `vpbx.store`; every operation here that changes
money or a number's state is one `store.write()` transaction, and every balance change is a ledger row posted in it
(`Store.post`). Money is int minor units. Dates are passed in (`today`, `now`) so every rule can be tested on any
calendar day; the CLI passes the real clock, and a back-office date (`on`) is bounded by one rule, `effective_day`.
Mail is queued in the outbox inside the transaction and sent after it.

States: available -> (reserved) -> pending_documents -> active <-> suspended -> released -> (quarantine) -> available;
available -> trial -> available, or trial -> sold to the account trying it. A number never sold (available, no
account) is the install's own and serves calls.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vpbx.domain import validation as validate
from vpbx.domain.errors import ConflictError, NotFoundError, ValidationError, VpbxError
from vpbx.domain.numbers import TYPES
from vpbx.domain.records import Account, Number
from vpbx.domain.timestamps import to_iso
from vpbx.services import outbox

if TYPE_CHECKING:
    from vpbx.billing import Tariff
    from vpbx.config import Config
    from vpbx.storage.store import Store

log = logging.getLogger(__name__)

HELD = ("reserved", "pending_documents", "active", "suspended", "trial")   # statuses owned by an account
OWN_HOLDS = ("reserved", "trial")          # free holds: only their account may buy the number meanwhile
BILLED = ("active", "suspended", "pending_documents")                       # renewed by the billing run
MONTHS = (1, 3, 6, 12)
_NAME_RE = re.compile(r"\A[^\x00-\x1f\x7f\[\];]{2,100}\Z")
_DEVICE_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")


# ---- pure rules ------------------------------------------------------------------------------------------------
def calls_allowed(number: Number, now: datetime) -> tuple[bool, str]:
    """May calls to `number` be served at `now`? (reason when not). The install's own numbers always are."""
    if number.status == "active" or (number.status == "available" and number.account is None):
        return True, ""
    if number.status == "trial":
        if number.trial_until and datetime.fromisoformat(number.trial_until) > now:
            return True, ""
        return False, f"trial ended {number.trial_until}"
    return False, f"number is {number.status}"


def end_user_name(value: str) -> str:
    # refuse line breaks, tabs and other controls before runs of spaces are collapsed, so they are never kept hidden
    broken = any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value or "")
    given = value
    value = " ".join((value or "").split())
    if broken or not value.isprintable() or not _NAME_RE.fullmatch(value) or not any(ch.isalpha() for ch in value):
        # the value as given (escaped, cut), not as collapsed: 'Ivan\nPetrov' must not read as a valid 'Ivan Petrov'
        raise ValidationError(f"end user {validate.shown(given)} is not a person's full name (2-100 characters, no "
                              "'[', ';' or control characters); give --end-user \"First Last\"")
    return value


def device_id(value: str) -> str:
    if not isinstance(value, str) or not _DEVICE_RE.fullmatch(value):
        raise ValidationError(f"M2M device ID {value!r} is not valid (letters, digits, '.', '_', ':', '-'; up to 64); "
                              "give --m2m with the device's ID (e.g. its IMEI)")
    return value


def month_bounds(month: str) -> tuple[date, date]:
    """'YYYY-MM' -> (first day, first day of the next month)."""
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValidationError(f"month {month!r} is not YYYY-MM; e.g. --month 2026-11") from None
    if not (1970, 1) <= (first.year, first.month) <= (9999, 11):     # its end (the next month's first day) is a date
        raise ValidationError(f"month {month!r} is out of range; give a month from 1970-01 to 9999-11, e.g. "
                              f"--month 2026-11")
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt


BACKDATE_DAYS = 31      # how far back the back office may date an order, a release or a billing run


def effective_day(on: date | None, today: date, what: str) -> date:
    """The one rule for every back-office date (`--date` of `number assign`, `number release`, `billing run`): the
    day an operation counts from is `today` (the clock's), or a day up to BACKDATE_DAYS before it - an order taken
    on paper last week, a run missed on a holiday. Never a future day (that would give paid time away or charge
    ahead) and never further back (that would post years of renewals at once)."""
    if on is None:
        return today
    if isinstance(on, datetime) or not isinstance(on, date):
        raise ValidationError(f"{what} {on!r} is not a date; give YYYY-MM-DD")
    earliest = today - timedelta(days=BACKDATE_DAYS)
    if on > today:
        raise ValidationError(f"{what} {on} is in the future (today is {today}); give today or a day up to "
                              f"{BACKDATE_DAYS} days back ({earliest} .. {today}), or leave --date out")
    if on < earliest:
        raise ValidationError(f"{what} {on} is more than {BACKDATE_DAYS} days back (today is {today}); give a day "
                              f"from {earliest} to {today}, or leave --date out")
    return on


def _as_of(day: date, now: datetime) -> datetime:
    """The instant a billing run for `day` judges trials by: now, or the start of a future day being simulated."""
    return max(now, datetime(day.year, day.month, day.day, tzinfo=UTC))


# ---- tariff and rates -------------------------------------------------------------------------------------------
def load_tariff(store: Store, cfg: Config) -> Tariff:
    from vpbx.billing import parse_tariff

    source = store.rates.tariff_source()
    if source is None:
        raise NotFoundError("no tariff is loaded; load one with `vpbx tariff load tariffs/seed-ru.toml` (or your own)")
    return parse_tariff(source)


def save_tariff(store: Store, cfg: Config, text: str) -> Tariff:
    from vpbx.billing import parse_tariff

    tariff = parse_tariff(text)
    if tariff.currency != cfg.billing.currency:
        raise ValidationError(f"tariff currency {tariff.currency} is not this install's currency "
                              f"{cfg.billing.currency}; one currency per install ([billing] currency in vpbx.toml)")
    held = {n.plan for n in store.numbers.search() if n.plan}
    missing = sorted(held - set(tariff.plans))
    if missing:
        raise ValidationError(f"tariff has no plan {', '.join(missing)}, which numbers are on; keep those plans")
    store.rates.save_tariff(text)
    return tariff


def import_rates(store: Store, text: str) -> int:
    from vpbx.billing import PrefixTable, parse_rates_csv

    rows = parse_rates_csv(text)
    PrefixTable((p, price) for p, price, _d in rows)          # refuses duplicates and bad prefixes
    return store.rates.replace(rows)


def rate_of(store: Store, caller: str) -> tuple[str, int] | None:
    from vpbx.billing.rating import prefixes_of

    return store.rates.lookup(prefixes_of(caller))


# ---- accounts ---------------------------------------------------------------------------------------------------
def suspend_or_reactivate(store: Store, account: str) -> dict[str, list[str]]:
    """After a balance change (inside its transaction): below zero suspends the account's active numbers; back to
    zero or more reactivates its suspended ones (their renewal day unchanged)."""
    balance = store.accounts.get(account).balance
    changed: dict[str, list[str]] = {"suspended": [], "reactivated": []}
    if balance < 0:
        for n in store.numbers.held_by(account, ("active",)):
            store.numbers.update([n.number], status="suspended")
            changed["suspended"].append(n.number)
    else:
        for n in store.numbers.held_by(account, ("suspended",)):
            store.numbers.update([n.number], status="active")
            changed["reactivated"].append(n.number)
    return changed


def topup(store: Store, account: str, amount: int, ref: str, today: date, kind: str = "topup") -> dict[str, Any]:
    """Post a payment (`topup`, positive) or a correction (`adjustment`) to the account's ledger, then suspend or
    reactivate its numbers by the new balance - one transaction."""
    with validate.about(f"account {account}"):
        validate.config_text("ref", ref, obj=f"account {account}")
    if kind == "topup" and amount <= 0:
        raise ValidationError(f"account {account}: a top-up must be positive; use `vpbx account adjust` to correct")
    if amount == 0:
        raise ValidationError(f"account {account}: an adjustment of 0 changes nothing")
    with store.write():
        balance = store.accounts.post(account, amount, kind, today.isoformat(), ref=ref)
        changed = suspend_or_reactivate(store, account)
    return {"account": account, "amount": amount, "balance": balance, **changed}


ORG_ID_MAX = 99999999


def _org_id(account: str, org_id: int) -> int:
    if isinstance(org_id, bool) or not isinstance(org_id, int) or not 1 <= org_id <= ORG_ID_MAX:
        raise ValidationError(f"account {account}: organisation ID {org_id!r} is outside 1..{ORG_ID_MAX}")
    return org_id


def add_account(store: Store, name: str, email: str, org_id: int | None = None) -> Account:
    """A customer's account, balance 0; `org_id` is the extension a caller types on a shared number."""
    with validate.about(f"account {name}"):
        record = Account(validate.name(name, "account"), validate.email(email),
                         _org_id(name, org_id) if org_id is not None else None)
    return store.accounts.add(record)


def update_account(store: Store, name: str, *, email: str | None = None, org_id: int | None = None,
                   record_calls: bool | None = None, record_prompt: str | None = None,
                   cfg: Config | None = None) -> Account:
    """Change an account's e-mail, organisation ID or call recording (`record_prompt`: a prompt installed in `cfg`'s
    sounds dir, or `none`); None keeps a field."""
    changes: dict[str, Any] = {}
    with validate.about(f"account {name}"):
        if email is not None:
            changes["email"] = validate.email(email)
        if org_id is not None:
            changes["org_id"] = _org_id(name, org_id)
    if record_calls is not None or record_prompt is not None:
        if cfg is None:
            raise ValueError("changing call recording needs the config (the record prompt is looked up there)")
        from vpbx.services.recordings import setting_changes

        changes.update(setting_changes(cfg, f"account {name}", record_calls, record_prompt))
    if not changes:
        raise ValidationError(f"account {validate.plain(name)}: nothing to change; give an e-mail, an "
                              f"organisation ID or call recording")
    return store.accounts.update(name, **changes)


def close_account(store: Store, name: str) -> None:
    """Close an account (refused while it holds numbers or a non-zero balance); its ledger is kept."""
    store.accounts.close(name)


def check_ledgers(store: Store) -> int:
    """Prove every account's balance equals the sum of its ledger: the number of accounts, or ConflictError naming
    every one that does not add up."""
    bad = store.accounts.mismatches()
    if bad:
        raise ConflictError("ledger does not add up for " + ", ".join(
            f"account {b['account']} (balance {b['balance']}, ledger {b['ledger_sum']})" for b in bad)
            + "; restore the database from a backup and report a bug")
    return len(store.accounts.all())


def wait_for_number(store: Store, account: str, country: str, city: str = "", type: str = "") -> dict[str, Any]:
    """Put `account` on the waitlist for a number of `country` (ISO 3166 alpha-2, any case), optionally of a city
    (part of its name) and type; it is mailed once when a matching number becomes available."""
    code = country.upper()
    if not (len(code) == 2 and code.isascii() and code.isalpha()):
        raise ValidationError(f"waitlist: country {validate.shown(code)} is not an ISO 3166 code; "
                              f"give e.g. --country UA")
    with validate.about("waitlist"):
        validate.config_text("city", city, obj="waitlist")
        if type and type not in TYPES:
            raise ValidationError(f"type {type!r} is not one of {', '.join(TYPES)}")
    return store.shop.add_waitlist(account, code, city, type)


def _in_minutes(by_destination: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Charged outbound calls per destination (rate prefix and its description): calls, minutes of talk, cost."""
    return [{"prefix": d["prefix"], "description": d["description"], "calls": d["calls"],
             "minutes": round(d["seconds"] / 60, 1), "cost": d["cost"]} for d in by_destination]


def report(store: Store) -> dict[str, Any]:
    """Numbers by status, revenue by month, calls by number, charged outbound calls by destination (rate prefix)."""
    return {"numbers_by_status": store.numbers.status_counts(), "revenue_by_month": store.accounts.revenue_by_month(),
            "calls_by_number": store.calls.stats(),
            "outbound_by_destination": _in_minutes(store.calls.outbound_by_destination())}


# ---- orders -----------------------------------------------------------------------------------------------------
def assign(store: Store, cfg: Config, numbers: Sequence[str], account: str, today: date, *,
           end_user: str | None = None, m2m: str | None = None, months: int = 1, plan: str | None = None,
           on: date | None = None) -> Any:
    """Sell `numbers` to `account`: connection fee + first period (+ discounts) charged in one transaction, or
    nothing at all. Numbers needing documents wait in pending_documents; the others are active at once. `today` is
    the clock's day; `on` back-dates the order (`effective_day`). A number the account holds for itself (reserved,
    or on trial: converting a trial into a sale is what a trial is for) is sold like an available one."""
    from vpbx.billing import next_renewal, quote

    today = effective_day(on, today, "order date")

    if (end_user is None) == (m2m is None):
        raise ValidationError("every number needs a responsible end user or an M2M device; give exactly one of "
                              "--end-user \"Full Name\" or --m2m DEVICE_ID")
    holder = end_user_name(end_user) if end_user is not None else ""
    device = device_id(m2m) if m2m is not None else ""
    if months not in MONTHS:
        raise ValidationError(f"--months {months} is not offered; use 1, 3, 6 or 12")
    if len(set(numbers)) != len(numbers):
        raise ValidationError("a number is listed twice in the order; list each once")
    tariff = load_tariff(store, cfg)
    with store.write():
        acct = store.accounts.get(account)
        records = [store.numbers.get(n) for n in numbers]
        for n in records:
            if n.status in OWN_HOLDS and n.account == account:
                continue
            if n.status != "available" or n.account:
                raise ConflictError(f"number {n.number} is {n.status}"
                                    + (f" (account {n.account})" if n.account else "")
                                    + "; only available numbers can be assigned "
                                      "(see `vpbx number list --status available`)")
        q = quote(tariff, [(n.number, n.type, n.category, plan) for n in records], months, cfg.billing.policy, today)
        if acct.balance < q.total:
            from vpbx.billing import format_amount

            short = q.total - acct.balance
            raise ConflictError(
                f"account {account} has {format_amount(acct.balance, tariff.currency)}, the order costs "
                f"{format_amount(q.total, tariff.currency)}; top up at least {format_amount(short, tariff.currency)} "
                f"with `vpbx account topup {account} {format_amount(short).replace(' ', '')}`; nothing was charged")
        credit = tariff.plans[plan].call_credit if plan else 0
        for n, line in zip(records, q.lines, strict=True):
            day = today.isoformat()
            if line.connection_fee:
                store.accounts.post(account, -line.connection_fee, "connection", day, number=n.number,
                                    ref="connection fee")
            store.accounts.post(account, -(line.period_fee - line.discount), "period", day, number=n.number,
                       period_start=line.period_start.isoformat(), period_end=line.paid_until.isoformat(),
                       ref=f"{months} month(s)" + (f", {q.discount_percent}% off" if line.discount else ""))
            status = "pending_documents" if n.requires_documents else "active"
            store.numbers.update([n.number], status=status, account=account, end_user=holder, m2m_device=device,
                                 plan=plan, anchor_day=line.anchor_day, connected_on=day,
                                 paid_until=line.paid_until.isoformat(), trial_until=None, reserved_until=None,
                                 quarantine_until=None, call_credit=credit,
                                 credit_renews_on=next_renewal(line.anchor_day, today).isoformat() if plan else None)
            if status == "active":
                _mail_connected(store, acct, n.number, line.paid_until)
            else:
                outbox.queue_notice(store, acct.email, f"Number {n.number}: documents needed",
                                    f"Your order of {n.number} is paid. The number needs documents before it is "
                                    f"connected; the check takes about {n.lead_days} day(s) once they are received.\n")
        suspend_or_reactivate(store, account)
    return q


def _mail_connected(store: Store, acct: Account, number: str, paid_until: date | str) -> None:
    outbox.queue_notice(store, acct.email, f"Number {number} is connected",
                        f"Your number {number} is connected and active; it is paid until {paid_until}.\n")


def activate(store: Store, number: str, today: date) -> Number:
    """Admin: documents checked -> the number is active (or suspended if the account is in debt); the account is
    mailed."""
    with store.write():
        n = store.numbers.get(number)
        if n.status != "pending_documents":
            raise ConflictError(f"number {number} is {n.status}, not pending_documents; nothing to activate")
        if not store.shop.list_documents(number):
            raise ConflictError(f"number {number} has no documents; add them with `vpbx document add {number} FILE`")
        acct = store.accounts.get(n.account or "")
        status = "active" if acct.balance >= 0 else "suspended"
        updated = store.numbers.update([number], status=status)[0]
        if status == "active":
            _mail_connected(store, acct, number, n.paid_until or "")
        else:                             # never tell a customer in debt the number works
            outbox.queue_notice(store, acct.email, f"Number {number} is connected but suspended",
                                f"Your number {number} is connected, but your account's balance is below zero, so it "
                                f"takes no calls; top up your account and it starts working.\n")
    return updated


DOCUMENT_MAX_BYTES = 20 * 1024 * 1024     # a scan or a photo of a passport; larger is not a document
# what a document may be, told by its first bytes (never by its name): kind -> magic
DOCUMENT_KINDS = {"PDF": (b"%PDF-",), "JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",)}


def read_document(file: Path) -> bytes:
    """The content of an end user's document, checked: a regular file (not a symlink, FIFO, device or directory -
    opened without following a link and without blocking, then checked on the open descriptor), 1 byte to
    DOCUMENT_MAX_BYTES (never read further), and a PDF, JPEG or PNG by content. ValidationError naming the file and
    the fix."""
    import stat

    where = f"document {validate.shown(str(file))}"
    kinds = ", ".join(DOCUMENT_KINDS)
    try:
        if Path(file).is_symlink():
            raise ValidationError(f"{where} is a symbolic link; give the file itself (a {kinds} file)")
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ValidationError(f"{where}: cannot read it ({exc.strerror or exc}); check the path") from None
    except ValueError:
        raise ValidationError(f"{where}: the path contains NUL; check the path") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValidationError(f"{where} is not a regular file (a pipe, device or directory); give a {kinds} file")
        if st.st_size > DOCUMENT_MAX_BYTES:
            raise ValidationError(f"{where} is {st.st_size} bytes, over the {DOCUMENT_MAX_BYTES // 2**20} MiB a "
                                  f"document may have; scan it at a lower resolution or compress it")
        try:
            data = fh.read(DOCUMENT_MAX_BYTES + 1)
        except OSError as exc:
            raise ValidationError(f"{where}: cannot read it ({exc.strerror or exc}); check the file") from None
    if len(data) > DOCUMENT_MAX_BYTES:
        raise ValidationError(f"{where} is over the {DOCUMENT_MAX_BYTES // 2**20} MiB a document may have (it grew "
                              f"while read); scan it at a lower resolution or compress it")
    if not data:
        raise ValidationError(f"{where} is empty; give the scanned document")
    if not any(data.startswith(magic) for magics in DOCUMENT_KINDS.values() for magic in magics):
        raise ValidationError(f"{where} is not a {kinds} file (checked by its content, not its name); scan or "
                              f"export the document as one of those")
    return data


def add_document(store: Store, cfg: Config, number: str, file: Path) -> dict[str, Any]:
    """Keep a copy of an end user's document (owner-only, beside the database) and record it. The document is
    checked first (read_document): a regular PDF, JPEG or PNG file of at most DOCUMENT_MAX_BYTES."""
    from vpbx.config import PRIVATE_DIR_MODE, atomic_write, make_dirs

    n = store.numbers.get(number)
    if not n.account:
        raise ConflictError(f"number {number} is not assigned to an account; assign it first with `vpbx number assign`")
    data = read_document(file)
    digest = hashlib.sha256(data).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", file.name)[-80:] or "document"
    folder = Path(cfg.db).resolve().parent / "documents" / number.lstrip("+")
    make_dirs(folder, PRIVATE_DIR_MODE)
    target = folder / f"{digest[:16]}-{safe}"
    atomic_write(target, data, mode=0o600)
    doc_id = store.shop.add_document(number, n.account, file.name, str(target), digest, len(data))
    return {"id": doc_id, "number": number, "filename": file.name, "sha256": digest, "size": len(data),
            "path": str(target)}


# what a number forgets when it leaves its owner (routing too: the next owner starts clean)
_UNOWNED: dict[str, Any] = dict(account=None, end_user="", m2m_device="", plan=None, anchor_day=None, connected_on=None,
                                paid_until=None, trial_until=None, reserved_until=None, call_credit=0,
                                credit_renews_on=None, route=None,
                                greeting=None, forward_to=(), fallback="hangup", vm_emails=())


def release(store: Store, cfg: Config, number: str, today: date, on: date | None = None) -> dict[str, Any]:
    """Give a number back: no refund; it rests in quarantine before it is available again. Routing is cleared so
    the next owner starts clean. `today` is the clock's day; `on` back-dates the release (`effective_day`)."""
    today = effective_day(on, today, "release date")
    with store.write():
        n = store.numbers.get(number)
        if n.status not in HELD:
            raise ConflictError(f"number {number} is {n.status}; only a held number can be released")
        users = store.numbers.used_by(number)
        if users:
            raise ConflictError(f"number {number} is still used by {', '.join(users)}; change those first")
        paid = n.status not in ("trial", "reserved")     # a free hold goes straight back on sale
        warning = ""
        if n.paid_until and paid:
            renews = date.fromisoformat(n.paid_until) + timedelta(days=1)
            if (renews - today).days <= 1:
                warning = (f"number {number} renews on {renews}; it is released now and the paid days are not refunded")
        until = today + timedelta(days=cfg.billing.quarantine_days) if paid else today
        store.numbers.update([number], status="released" if paid else "available",
                             quarantine_until=until.isoformat() if paid else None, **_UNOWNED)
    return {"number": number, "was": n.status, "account": n.account,
            "available_on": until.isoformat(), "warning": warning}


def trial(store: Store, cfg: Config, number: str, account: str, hours: int, now: datetime) -> Number:
    """A free trial: the number serves calls until it expires; the billing run then makes it available again."""
    if not 1 <= hours <= cfg.billing.max_trial_hours:
        raise ValidationError(f"--hours {hours} is outside 1..{cfg.billing.max_trial_hours} "
                              f"([billing] max_trial_hours)")
    with store.write():
        store.accounts.get(account)
        n = store.numbers.get(number)
        if n.status != "available" or n.account:
            raise ConflictError(f"number {number} is {n.status}; only an available number can be tried")
        running = [t.number for t in store.numbers.held_by(account, ("trial",))]
        if running:
            raise ConflictError(f"account {account} already has a trial ({', '.join(running)}); one at a time")
        until = to_iso(now + timedelta(hours=hours))
        return store.numbers.update([number], status="trial", account=account, trial_until=until)[0]


def reserve(store: Store, numbers: Sequence[str], account: str, hours: int, now: datetime) -> list[Number]:
    """Hold available numbers for an account (free, no calls) while it decides; only it may assign them, until the
    reservation lapses (the billing run makes them available again)."""
    if not 1 <= hours <= 24 * 14:
        raise ValidationError(f"--hours {hours} is outside 1..336 (two weeks)")
    until = to_iso(now + timedelta(hours=hours))
    with store.write():
        store.accounts.get(account)
        for number in numbers:
            n = store.numbers.get(number)
            if n.status != "available" or n.account:
                raise ConflictError(f"number {number} is {n.status}; only an available number can be reserved")
        return store.numbers.update(numbers, status="reserved", account=account, reserved_until=until)


# ---- the daily billing run --------------------------------------------------------------------------------------
def billing_run(store: Store, cfg: Config, today: date, now: datetime, *, on: date | None = None) -> dict[str, Any]:
    """Renew every held number whose paid period ends before the day (each period once, even into debt), refill the
    monthly call credit of plans, suspend the accounts that went negative, rate toll-free calls and charge outbound
    calls left unrated (`outbound_rated`, vpbx.services.charging), end expired trials, return quarantined numbers.
    Running it twice changes nothing. `today` is the clock's day; `on` runs it for a day up to BACKDATE_DAYS back
    (`effective_day`)."""
    from vpbx.billing import next_period, next_renewal, renewal_charge

    day = effective_day(on, today, "billing date")
    tariff: Tariff | None = None                      # read when a renewal is due, so a shop-less PBX needs none
    summary: dict[str, Any] = {"date": day.isoformat(), "renewed": [], "charged": 0, "suspended": [],
                               "credit_refilled": [], "trials_ended": [], "reservations_lapsed": [],
                               "available_again": []}
    for n in store.numbers.due(day.isoformat()):
        with store.write():
            current = store.numbers.get(n.number)          # re-read inside the transaction
            if current.status not in BILLED or not current.paid_until or current.paid_until >= day.isoformat():
                continue
            paid_until = date.fromisoformat(current.paid_until)
            tariff = tariff or load_tariff(store, cfg)
            fee = renewal_charge(tariff, current.type, current.category, current.plan)
            while paid_until < day:
                start, end = next_period(current.anchor_day or 1, paid_until)
                store.accounts.post(current.account or "", -fee, "renewal", start.isoformat(), number=current.number,
                           period_start=start.isoformat(), period_end=end.isoformat(), ref="monthly fee")
                summary["renewed"].append({"number": current.number, "period_start": start.isoformat(), "fee": fee})
                summary["charged"] += fee
                paid_until = end
            store.numbers.update([current.number], paid_until=paid_until.isoformat())
            summary["suspended"] += suspend_or_reactivate(store, current.account or "")["suspended"]
    for n in store.numbers.credit_due(day.isoformat()):     # monthly, on the renewal day, prepaid months too
        with store.write():
            current = store.numbers.get(n.number)
            if (current.status not in BILLED or not current.plan or not current.credit_renews_on
                    or current.credit_renews_on > day.isoformat()):
                continue
            tariff = tariff or load_tariff(store, cfg)
            plan = tariff.plans.get(current.plan)
            store.numbers.update([current.number], call_credit=plan.call_credit if plan else 0,     # no roll-over
                                 credit_renews_on=next_renewal(current.anchor_day or 1, day).isoformat())
            summary["credit_refilled"].append(current.number)
    summary["calls_rated"] = 0
    for call_id in store.calls.unrated():      # catch up calls the engine could not rate when they ended
        if charge_call(store, cfg, call_id) is not None:
            summary["calls_rated"] += 1
    from vpbx.services.charging import charge_unrated_outbound

    summary["outbound_rated"] = charge_unrated_outbound(store, cfg)     # and calls to external numbers it left
    as_of = _as_of(day, now)
    for n in store.numbers.with_status("trial"):
        if not calls_allowed(n, as_of)[0]:
            with store.write():
                store.numbers.update([n.number], status="available", **_UNOWNED)
            summary["trials_ended"].append(n.number)
    for n in store.numbers.with_status("reserved"):
        if n.reserved_until and datetime.fromisoformat(n.reserved_until) <= as_of:
            with store.write():
                store.numbers.update([n.number], status="available", **_UNOWNED)
            summary["reservations_lapsed"].append(n.number)
    for n in store.numbers.with_status("released"):
        if n.quarantine_until and n.quarantine_until <= day.isoformat():
            with store.write():
                store.numbers.update([n.number], status="available", quarantine_until=None)
            summary["available_again"].append(n.number)
    notify_waitlist(store, summary["trials_ended"] + summary["reservations_lapsed"] + summary["available_again"])
    _purge_recordings(store, cfg, now, summary)
    store.shop.record_billing_run(day.isoformat(), summary)
    return summary


def _purge_recordings(store: Store, cfg: Config, now: datetime, summary: dict[str, Any]) -> None:
    """Call recordings past their retention go in the daily run (`recordings_purged`); a recordings dir vpbx may not
    write to is reported (`recordings_error`) rather than failing the billing."""
    from vpbx.services import recordings

    try:
        summary["recordings_purged"] = recordings.purge(store, cfg, now)
    except VpbxError as exc:
        log.warning("purging call recordings failed: %s", exc)
        summary["recordings_purged"] = 0
        summary["recordings_error"] = str(exc)


# ---- toll-free calls --------------------------------------------------------------------------------------------
def charge_call(store: Store, cfg: Config, call_id: str) -> int | None:
    """Rate a finished inbound call to an account's toll-free number by the caller's longest prefix and charge it
    (the plan's call credit first); None when the call is not chargeable. Charging a call twice is impossible."""
    from vpbx.billing import call_cost

    call = store.calls.get(call_id)
    if not call or not call.get("ended_at") or call.get("direction") != "inbound" or call.get("cost") is not None:
        return None
    n = store.numbers.find(call["number"])
    if (n is None or n.type != "tollfree" or not n.account or n.status == "trial" or not n.connected_on
            or (call.get("started_at") or "") < n.connected_on):
        return None                       # the install's own number, a free trial, or a call before the sale
    seconds = int(call.get("billsec") or 0)
    if seconds <= 0:
        store.calls.set_charge(call_id, n.account, 0)
        return 0
    try:
        tariff = load_tariff(store, cfg)
        increment = tariff.tollfree_increment_seconds
    except NotFoundError:
        increment = 60
    rate = rate_of(store, call.get("caller") or "")
    if rate is None:
        log.warning("call %s to %s from %r: no toll-free rate matches the caller; not charged (import rates with "
                    "`vpbx rates import`)", call_id, n.number, call.get("caller"))
        store.calls.set_charge(call_id, n.account, 0)
        return 0
    from vpbx.services.charging import pay_for_call

    cost = call_cost(rate[1], seconds, increment)
    day = (call.get("started_at") or "")[:10] or date.today().isoformat()
    # the plan's call credit first; None when rated meanwhile by another process (the engine and the billing run)
    return pay_for_call(store, call_id, n.account, n.number, cost, day,
                        f"{seconds} s from {call.get('caller')} at prefix {rate[0]}")


# ---- waitlist and mail ------------------------------------------------------------------------------------------
def waitlist_matches(entry: dict[str, Any], n: Number) -> bool:
    """The city matches as `vpbx number list --city` does: a part of the name ("Kyiv" finds "Kyiv city")."""
    return (n.status == "available" and not n.account and entry["country"] == n.country
            and (not entry["city"] or entry["city"].casefold() in n.city.casefold())
            and (not entry["type"] or entry["type"] == n.type))


def notify_waitlist(store: Store, numbers: Iterable[Number | str]) -> list[dict[str, Any]]:
    """Numbers that became available: each open waitlist entry they match gets one e-mail (then it is closed)."""
    entries = store.shop.list_waitlist(open_only=True)        # read once: imports announce many numbers at a time
    sent: list[dict[str, Any]] = []
    for item in numbers if entries else ():
        n = store.numbers.get(item) if isinstance(item, str) else item
        for entry in [e for e in entries if waitlist_matches(e, n)]:
            with store.write():
                if store.shop.mark_waitlist_notified(entry["id"], n.number):      # once, even against a concurrent run
                    acct = store.accounts.get(entry["account"])
                    where = ", ".join(x for x in (n.city, n.country) if x)
                    outbox.queue_notice(store, acct.email, f"A number you wait for is available: {n.number}",
                                        f"{n.number} ({n.type}, {where}) is now available. Order it before someone "
                                        f"else does.\n")
                    sent.append({"entry": entry["id"], "account": acct.name, "number": n.number})
            entries.remove(entry)
    return sent


def flush_mail(store: Store, cfg: Config, ignore_backoff: bool = False) -> dict[str, int]:
    """Send the due notices now (`ignore_backoff`: every unsent one, as `vpbx notices send` does); a failure keeps
    the notice, with backoff, for the next try (the engine's outbox loop, the billing run, or the next command)."""
    if ignore_backoff:
        outbox.retry_now(store, "notice")
    return outbox.deliver_notices(store, cfg.smtp)


# ---- statements -------------------------------------------------------------------------------------------------
def statement(store: Store, account: str, month: str) -> dict[str, Any]:
    first, nxt = month_bounds(month)
    acct = store.accounts.get(account, include_closed=True)
    rows = store.accounts.entries(account, since=first.isoformat(), before=nxt.isoformat())
    opening = store.accounts.ledger_sum(account, before=first.isoformat())
    by_kind: dict[str, int] = {}
    for r in rows:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + r["amount"]
    calls = store.calls.account_totals(account, first.isoformat(), nxt.isoformat())
    topups = sum(r["amount"] for r in rows if r["amount"] > 0)
    charges = -sum(r["amount"] for r in rows if r["amount"] < 0)
    outbound = store.calls.outbound_by_destination(first.isoformat(), nxt.isoformat(), account)
    outbound_seconds = sum(d["seconds"] for d in outbound)
    return {"account": acct.name, "month": month, "opening_balance": opening, "charges": charges,
            "charges_by_kind": {k: -v for k, v in sorted(by_kind.items()) if v < 0}, "topups": topups,
            "calls": calls["calls"], "minutes": round(calls["seconds"] / 60, 1), "call_cost": calls["cost"],
            "outbound_calls": sum(d["calls"] for d in outbound), "outbound_minutes": round(outbound_seconds / 60, 1),
            "outbound_cost": sum(d["cost"] for d in outbound), "closing_balance": opening + topups - charges,
            "outbound_by_destination": _in_minutes(outbound), "entries": rows}
