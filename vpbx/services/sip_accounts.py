"""SIP accounts: the phones and softphones that register to vpbx.

Rule: a password is either given (checked by `vpbx.domain.validation.password`) or generated here with `secrets`
(24 URL-safe characters); every field that reaches pjsip_vpbx.conf is checked by `vpbx.domain.rules.check_sip_account`,
the same check the renderer makes. A caller ID must be a number of this install (the store refuses any other).
Calls between colleagues (vpbx.dialplan.outbound.colleague_call): an account's extension (2-6 digits, unique: the
store refuses one that is another account's extension or all-digit login, or an organisation ID), how long its phone
rings, then what happens (`no_answer`: voicemail needs --vm-email; a forward to tel:+E164 needs a caller-ID number that
may call out and a trunk, checked on every change of the account).
Prepaid outbound calls: the customer's account that pays the SIP account's outbound calls (`--account`; open, and the
one holding the caller-ID number when an account holds it: `vpbx.services.charging.check_sip_payer`).
"""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vpbx.dialplan import outbound
from vpbx.domain import rules
from vpbx.domain import validation as validate
from vpbx.domain.destinations import try_parse
from vpbx.domain.errors import ValidationError
from vpbx.domain.records import SipAccount, to_dict
from vpbx.domain.timestamps import local_day_start, utc_now
from vpbx.services import charging

if TYPE_CHECKING:
    from vpbx.config import Config
    from vpbx.storage.store import Store

DEFAULT_CHANNELS = 2


def generate_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters


def parse_codecs(text: str, login: str) -> tuple[str, ...]:
    """`--codecs g722,alaw` -> ("g722", "alaw"); `default` -> () (the install's [sip] codecs)."""
    if text == "default":
        return ()
    return rules.check_codecs(tuple(text.split(",")), f"SIP account {login}")   # whole names: nothing is stripped


def parse_limit(text: str, what: str, login: str) -> int | None:
    """`--max-outbound-calls 2` / `--daily-minutes 300` -> 2 / 300; `none` -> None (the default: no cap of its own)."""
    if text == "none":
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise ValidationError(f"SIP account {login}: {what} {validate.shown(text)} is not a whole number; give one, "
                              "or `none`")
    return int(text)


def _check(account: SipAccount, cfg: Config) -> SipAccount:
    rules.check_sip_account(account)
    rules.check_tls_transport([account], bool(cfg.sip.tls_cert and cfg.sip.tls_key))
    if account.dtmf == "inband" and not account.codecs and not set(cfg.sip.codecs) & set(rules.INBAND_CODECS):
        raise ValidationError(f"SIP account {account.login}: inband DTMF is detected on alaw/ulaw audio only and the "
                              f"install's [sip] codecs have neither; give --codecs alaw,ulaw")
    return account


def colleague_changes(login: str, *, extension: str | None = None, ring_timeout: int | None = None,
                      no_answer: str | None = None, vm_emails: Sequence[str] = ()) -> dict[str, Any]:
    """The colleague-call settings as the command line gives them (None / (): keep): `--extension 201` (`none`
    removes it), `--ring-timeout S`, `--no-answer hangup|voicemail|play:PROMPT|tel:+E164`, `--vm-email ADDR`
    (repeatable; replaces the list, `none` empties it). Each checked alone here; the whole account by `_colleague`."""
    obj = f"SIP account {login}"
    changes: dict[str, Any] = {}
    if extension is not None:
        problem = None if extension == "none" else outbound.extension_problem(extension)
        if problem is not None:
            raise ValidationError(f"{obj}: extension {validate.shown(extension)}: {problem}; or `none`")
        changes["extension"] = None if extension == "none" else extension
    if ring_timeout is not None:
        low, high = outbound.RING_TIMEOUT_RANGE
        if isinstance(ring_timeout, bool) or not isinstance(ring_timeout, int) or not low <= ring_timeout <= high:
            raise ValidationError(f"{obj}: ring timeout {validate.shown(ring_timeout)} is outside {low}..{high} "
                                  "seconds")
        changes["ring_timeout"] = ring_timeout
    if no_answer is not None:
        dest = try_parse(no_answer)
        if dest is None or dest.kind not in outbound.NO_ANSWER_KINDS:
            raise ValidationError(f"{obj}: --no-answer {validate.shown(no_answer)} is not one of "
                                  f"{outbound.NO_ANSWER_SYNTAX}")
        changes["no_answer"] = str(dest)
    if vm_emails:
        with validate.about(obj):
            changes["vm_emails"] = () if tuple(vm_emails) == ("none",) else \
                tuple(dict.fromkeys(validate.email(v) for v in vm_emails))
    return changes


COLLEAGUE_FIELDS = ("no_answer", "vm_emails", "caller_id")     # a change of these is checked by `_colleague`


def _colleague(store: Store, cfg: Config, account: SipAccount, changed: Sequence[str] = COLLEAGUE_FIELDS
               ) -> SipAccount:
    """The account's no-answer handling, checked whole when a field it depends on is `changed`: voicemail needs an
    e-mail address; a prompt must be installed; a forward to a mobile goes out as the caller-ID number's call
    (`outbound.forward_problem`)."""
    if not set(changed) & set(COLLEAGUE_FIELDS):
        return account
    obj = f"SIP account {account.login}"
    dest = try_parse(account.no_answer)
    if dest is not None and dest.kind == "voicemail" and not account.vm_emails:
        raise ValidationError(f"{obj}: --no-answer voicemail needs at least one --vm-email address")
    if dest is not None and dest.kind == "play":
        from vpbx.services.routing import check_prompts

        check_prompts(cfg.asterisk_sounds_dir, f"{obj}: --no-answer", [dest.value])
    if dest is not None and dest.kind == "tel":
        own = store.numbers.find(account.caller_id) if account.caller_id else None
        problem = outbound.forward_problem(account, own, cfg.default_trunk)
        if problem is not None:
            raise ValidationError(f"{obj}: calls cannot be forwarded to {dest.value} (they go out as the account's "
                                  f"caller-ID number's calls): {problem}")
    return account


def add(store: Store, cfg: Config, login: str, *, password: str | None = None, caller_id: str | None = None,
        channels: int = DEFAULT_CHANNELS, codecs: str | None = None, dtmf: str | None = None,
        transport: str = "udp", srtp: bool = False, allow_countries: str | None = None,
        allow_prefixes: str | None = None, max_outbound_calls: str | None = None,
        daily_minutes: str | None = None, extension: str | None = None, ring_timeout: int | None = None,
        no_answer: str | None = None, vm_emails: Sequence[str] = (), account: str | None = None) -> SipAccount:
    """Add a SIP account in the install's domain; without `password` a strong one is generated (returned once).
    `codecs`: comma-separated, preferred first (None or "default": the install's [sip] codecs); the toll-fraud
    guards as `update` takes them (None: the defaults); colleague calls as `colleague_changes` takes them;
    `account`: the customer's account that pays its outbound calls (None: they are not rated)."""
    validate.login(login)
    if password is not None:
        with validate.about(f"SIP account {login}"):
            validate.password(password)
    obj = f"SIP account {login}"
    record = _check(SipAccount(
        login=login, password=password or generate_password(), domain=cfg.domain, caller_id=caller_id,
        channels=channels, codecs=() if codecs is None else parse_codecs(codecs, login),
        dtmf=rules.DEFAULT_DTMF if dtmf is None else dtmf, transport=transport, srtp=srtp,
        allow_countries=() if allow_countries is None else rules.parse_countries(allow_countries, obj),
        allow_prefixes=() if allow_prefixes is None else rules.parse_prefixes(allow_prefixes, obj),
        max_outbound_calls=None if max_outbound_calls is None else parse_limit(max_outbound_calls,
                                                                               "max outbound calls", login),
        daily_minutes=None if daily_minutes is None else parse_limit(daily_minutes, "daily minutes", login),
        account=account), cfg)
    record = replace(record, **colleague_changes(login, extension=extension, ring_timeout=ring_timeout,
                                                 no_answer=no_answer, vm_emails=vm_emails))
    with store.write():
        return store.sip_accounts.add(charging.check_sip_payer(store, _colleague(store, cfg, record)))


def update(store: Store, cfg: Config, login: str, *, codecs: str | None = None, dtmf: str | None = None,
           caller_id: str | None = None, transport: str | None = None, srtp: bool | None = None,
           channels: int | None = None, allow_countries: str | None = None, allow_prefixes: str | None = None,
           max_outbound_calls: str | None = None, daily_minutes: str | None = None,
           record_calls: bool | None = None, record_prompt: str | None = None, extension: str | None = None,
           ring_timeout: int | None = None, no_answer: str | None = None,
           vm_emails: Sequence[str] = (), password: str | None = None, account: str | None = None,
           no_account: bool = False) -> SipAccount:
    """`vpbx sip set`: change the given fields (None: keep); `caller_id` "" removes the caller ID; `password` one the
    admin chose (`new_password` generates one), checked like every field by `rules.check_sip_account`. The toll-fraud
    guards come as the command line gives them (`UA,PL` / `all` / `default`; `+38044` / `none`; a number / `none`);
    call recording as `vpbx.services.recordings.setting_changes` takes it (a prompt name or `none`); colleague calls
    as `colleague_changes` takes them; `account` the customer's account that pays its outbound calls, `no_account`
    detaches it (its calls are no longer rated). Everything is checked before the one write: refused input changes
    nothing."""
    validate.login(login)
    current = store.sip_accounts.get(login)
    changes: dict[str, object] = {}
    if codecs is not None:
        changes["codecs"] = parse_codecs(codecs, login)
    if dtmf is not None:
        changes["dtmf"] = dtmf
    if caller_id is not None:
        changes["caller_id"] = caller_id or None
    if transport is not None:
        changes["transport"] = transport
    if srtp is not None:
        changes["srtp"] = srtp
    if channels is not None:
        changes["channels"] = channels
    if allow_countries is not None:
        changes["allow_countries"] = rules.parse_countries(allow_countries, f"SIP account {login}")
    if allow_prefixes is not None:
        changes["allow_prefixes"] = rules.parse_prefixes(allow_prefixes, f"SIP account {login}")
    if max_outbound_calls is not None:
        changes["max_outbound_calls"] = parse_limit(max_outbound_calls, "max outbound calls", login)
    if daily_minutes is not None:
        changes["daily_minutes"] = parse_limit(daily_minutes, "daily minutes", login)
    if record_calls is not None or record_prompt is not None:
        from vpbx.services.recordings import setting_changes

        changes.update(setting_changes(cfg, f"SIP account {login}", record_calls, record_prompt))
    changes.update(colleague_changes(login, extension=extension, ring_timeout=ring_timeout, no_answer=no_answer,
                                     vm_emails=vm_emails))
    if password is not None:
        changes["password"] = password
    if account is not None and no_account:
        raise ValidationError(f"SIP account {login}: give --account NAME or --no-account, not both")
    if account is not None or no_account:
        changes["account"] = account
    if not changes:
        raise ValidationError(f"SIP account {login}: nothing to change; give --codecs, --dtmf, --caller-id, "
                              f"--transport, --srtp/--no-srtp, --channels, --allow-countries, --allow-prefixes, "
                              f"--max-outbound-calls, --daily-minutes, --record/--no-record, --record-prompt, "
                              f"--extension, --ring-timeout, --no-answer, --vm-email, --password or --password-file, "
                              f"--account or --no-account")
    changed = _check(replace(current, **changes), cfg)  # type: ignore[arg-type]
    with store.write():
        if {"account", "caller_id"} & set(changes):
            charging.check_sip_payer(store, changed)
        updated = store.sip_accounts.update(_colleague(store, cfg, changed, tuple(changes)))
        return updated if password is None else store.sip_accounts.set_password(login, password)


def show(store: Store, login: str) -> dict[str, Any]:
    """`vpbx sip show`: the account (no password), the destinations its guards allow as they apply now, and today's
    outbound use (calls, minutes, in progress, refused per guard; the server's local day)."""
    account = store.sip_accounts.get(login)
    data = to_dict(account)
    data.pop("password")
    countries, prefixes = outbound.allowed_destinations(account, account.caller_id or "")
    use = store.calls.outbound_use(login, local_day_start(utc_now()))
    data["outbound"] = {
        "allowed": "all" if rules.ANY_COUNTRY in countries else ",".join((*countries, *prefixes)) or "none",
        "max_calls": outbound.max_outbound_calls(account),
        "daily_minutes": account.daily_minutes,
        "today_calls": use.pop("calls"),
        "today_minutes": round(use.pop("seconds") / 60, 1),
        "in_progress": use.pop("in_progress"),
        "refused_today": use,
    }
    return data


def new_password(store: Store, login: str) -> SipAccount:
    """Give the account a new generated password (returned once)."""
    return store.sip_accounts.set_password(login, generate_password())


def remove(store: Store, login: str) -> None:
    """Remove a SIP account (refused while a route, group or IVR uses it)."""
    store.sip_accounts.remove(login)
