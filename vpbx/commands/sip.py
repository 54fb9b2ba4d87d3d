"""`vpbx sip ...`: SIP accounts (phones and softphones that register to vpbx).

Rule: a thin shell over vpbx.services.sip_accounts; a password is shown once (when it is set), never listed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx, password_input, without_password

F = TypeVar("F", bound=Callable[..., Any])
SIP_COLUMNS = ("login", "extension", "domain", "caller_id", "channels", "transport", "srtp", "account")
CODECS_HELP = ("Codecs the phone may use, preferred first, comma-separated, from g722, opus, alaw, ulaw, gsm, g726 "
               "(opus only where Asterisk has codec_opus); `default`: the install's [sip] codecs.")
TRANSPORT_HELP = ("How Asterisk reaches the phone: udp, tcp or tls (tls needs [sip] tls_cert and tls_key; the phone "
                  "registers to port [sip] tls_port with ;transport=tls).")
SRTP_HELP = "Require SRTP (SDES keys; use with --transport tls): a call offering plain RTP is refused (488)."
COUNTRIES_HELP = ("Toll-fraud guard: the countries outbound calls may reach, ISO codes comma-separated (UA,PL); `all`: "
                  "anywhere; `default`: the caller-ID number's own country (the default, unless prefixes are set).")
PREFIXES_HELP = ("Toll-fraud guard: number prefixes outbound calls may reach besides the countries (+38044,+4930); "
                 "`none` removes them. With prefixes and no countries set, only the prefixes.")
MAX_CALLS_HELP = "Toll-fraud guard: outbound calls at once (0: none); `none`: as many as --channels (the default)."
DAILY_HELP = "Toll-fraud guard: outbound minutes per day (server's local day); `none`: no cap (the default)."
EXTENSION_HELP = ("A short number colleagues dial (2-6 digits, unique; also typed in --extensions IVRs); `none` "
                  "removes it. Numbers are dialled with '+' or as 7 or more digits, so an extension never hides one.")
RING_TIMEOUT_HELP = "Seconds the phone rings for a colleague's call before the --no-answer handling (5-300)."
NO_ANSWER_HELP = ("What a colleague's call gets when the phone does not answer, is busy or not registered: hangup, "
                  "voicemail (to --vm-email), play:PROMPT, or tel:+E164 (rings as long; goes out through the trunk "
                  "as the account's caller-ID number's call).")
VM_EMAIL_HELP = "Voicemail recipient for colleagues' calls (repeatable; replaces the list; `none` empties it)."
ACCOUNT_HELP = ("The customer's account that pays the phone's outbound calls (prepaid: plan call credit, then balance; "
                "an open account, the one holding the caller-ID number if an account holds it). Without it the "
                "calls are not rated.")


def colleague_options(f: F) -> F:
    """--extension, --ring-timeout, --no-answer, --vm-email (calls between colleagues) on `sip add` and `sip set`."""
    f = click.option("--vm-email", "vm_emails", multiple=True, help=VM_EMAIL_HELP)(f)
    f = click.option("--no-answer", metavar="DEST", help=NO_ANSWER_HELP)(f)
    f = click.option("--ring-timeout", type=int, help=RING_TIMEOUT_HELP)(f)
    return click.option("--extension", metavar="DIGITS|none", help=EXTENSION_HELP)(f)


PASSWORD_FILE_HELP = ("Read the password from FILE (its first line), or from stdin with - (a hidden prompt on a "
                      "terminal).")
DTMF_HELP = ("How the phone sends keys: rfc4733 (RTP events), info (SIP INFO), inband (tones in G.711 audio), auto "
             "(rfc4733 when the phone offers it, else inband).")


@click.group()
def sip() -> None:
    """SIP accounts (phones and softphones that register to vpbx)."""


@sip.command("add")
@click.argument("login")
@click.option("--password", help="Omit to have a strong one generated (shown once).")
@click.option("--password-file", metavar="FILE|-", help=PASSWORD_FILE_HELP)
@click.option("--caller-id", help="A number of this install presented on outbound calls.")
@click.option("--channels", type=int, default=2, show_default=True, help="Simultaneous calls.")
@click.option("--codecs", help=CODECS_HELP)
@click.option("--dtmf", help=DTMF_HELP + " Default: rfc4733.")
@click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), default="udp", show_default=True,
              help=TRANSPORT_HELP)
@click.option("--srtp/--no-srtp", default=False, show_default=True, help=SRTP_HELP)
@click.option("--allow-countries", help=COUNTRIES_HELP)
@click.option("--allow-prefixes", help=PREFIXES_HELP)
@click.option("--max-outbound-calls", help=MAX_CALLS_HELP)
@click.option("--daily-minutes", help=DAILY_HELP)
@click.option("--account", metavar="NAME", help=ACCOUNT_HELP)
@colleague_options
@json_option
@pass_ctx
def sip_add(c: Ctx, login: str, password: str | None, password_file: str | None, caller_id: str | None,
            channels: int, codecs: str | None, dtmf: str | None, transport: str, srtp: bool,
            allow_countries: str | None, allow_prefixes: str | None, max_outbound_calls: str | None,
            daily_minutes: str | None, account: str | None, extension: str | None, ring_timeout: int | None,
            no_answer: str | None, vm_emails: tuple[str, ...], as_json: bool) -> None:
    """Add a SIP account; the password is shown once."""
    from vpbx.domain.records import to_dict
    from vpbx.services import sip_accounts

    password = password_input(password, password_file, f"SIP account {login}")
    record = sip_accounts.add(c.store, c.cfg, login, password=password, caller_id=caller_id, channels=channels,
                               codecs=codecs, dtmf=dtmf, transport=transport, srtp=srtp,
                               allow_countries=allow_countries, allow_prefixes=allow_prefixes,
                               max_outbound_calls=max_outbound_calls, daily_minutes=daily_minutes,
                               extension=extension, ring_timeout=ring_timeout, no_answer=no_answer,
                               vm_emails=vm_emails, account=account)
    emit(to_dict(record), as_json, (*SIP_COLUMNS, "password"))
    if not as_json:
        click.echo("Save the password now: it is not shown again (`vpbx sip passwd` makes a new one).")


@sip.command("list")
@json_option
@pass_ctx
def sip_list(c: Ctx, as_json: bool) -> None:
    """List SIP accounts (passwords are never shown)."""
    emit([without_password(a) for a in c.store.sip_accounts.all()], as_json, SIP_COLUMNS, title="SIP accounts")


@sip.command("show")
@click.argument("login")
@json_option
@pass_ctx
def sip_show(c: Ctx, login: str, as_json: bool) -> None:
    """Show one SIP account, its toll-fraud guards and today's outbound use."""
    from vpbx.services import sip_accounts

    data = sip_accounts.show(c.store, login)
    if as_json:
        emit(data, True)
        return
    use = data.pop("outbound")
    refused = use.pop("refused_today")
    use["refused_today"] = ", ".join(f"{n} ({rule.removeprefix('refused_')})" for rule, n in refused.items()) or "0"
    emit({**data, **{f"outbound_{k}": v for k, v in use.items()}}, False)


@sip.command("set")
@click.argument("login")
@click.option("--codecs", help=CODECS_HELP)
@click.option("--dtmf", help=DTMF_HELP)
@click.option("--caller-id", help="A number of this install presented on outbound calls; \"\" removes it.")
@click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), help=TRANSPORT_HELP)
@click.option("--srtp/--no-srtp", default=None, help=SRTP_HELP)
@click.option("--channels", type=int, help="Simultaneous calls.")
@click.option("--allow-countries", help=COUNTRIES_HELP)
@click.option("--allow-prefixes", help=PREFIXES_HELP)
@click.option("--max-outbound-calls", help=MAX_CALLS_HELP)
@click.option("--daily-minutes", help=DAILY_HELP)
@click.option("--record/--no-record", default=None, help="Record the account's calls (`vpbx recording`).")
@click.option("--record-prompt", metavar="PROMPT|none", help="Prompt announcing the recording before the call is "
                                                             "connected; none: no announcement.")
@click.option("--password", help="A new password of your choice (`vpbx sip passwd` generates one).")
@click.option("--password-file", metavar="FILE|-", help=PASSWORD_FILE_HELP)
@click.option("--account", metavar="NAME", help=ACCOUNT_HELP)
@click.option("--no-account", is_flag=True, help="Detach the paying account: the phone's outbound calls are no "
                                                 "longer rated.")
@colleague_options
@json_option
@pass_ctx
def sip_set(c: Ctx, login: str, codecs: str | None, dtmf: str | None, caller_id: str | None, transport: str | None,
            srtp: bool | None, channels: int | None, allow_countries: str | None, allow_prefixes: str | None,
            max_outbound_calls: str | None, daily_minutes: str | None, record: bool | None,
            record_prompt: str | None, extension: str | None, ring_timeout: int | None, no_answer: str | None,
            vm_emails: tuple[str, ...], password: str | None, password_file: str | None, account: str | None,
            no_account: bool, as_json: bool) -> None:
    """Change a SIP account: password, codecs, DTMF mode, caller ID, transport, SRTP, channels (`vpbx reload`
    applies those), its toll-fraud guards, call recording, colleague calls (extension, ring timeout, no-answer
    handling) and the account paying its outbound calls (the engine applies them to the next call)."""
    from vpbx.services import sip_accounts

    if account is not None and no_account:
        raise click.UsageError("give --account NAME or --no-account, not both")

    updated = sip_accounts.update(c.store, c.cfg, login, codecs=codecs, dtmf=dtmf, caller_id=caller_id,
                                  transport=transport, srtp=srtp, channels=channels, allow_countries=allow_countries,
                                  allow_prefixes=allow_prefixes, max_outbound_calls=max_outbound_calls,
                                  daily_minutes=daily_minutes, record_calls=record, record_prompt=record_prompt,
                                  extension=extension, ring_timeout=ring_timeout, no_answer=no_answer,
                                  vm_emails=vm_emails,
                                  password=password_input(password, password_file, f"SIP account {login}"),
                                  account=account, no_account=no_account)
    emit(without_password(updated), as_json)


@sip.command("remove")
@click.argument("login")
@pass_ctx
def sip_remove(c: Ctx, login: str) -> None:
    """Remove a SIP account (refused while a route uses it)."""
    from vpbx.services import sip_accounts

    sip_accounts.remove(c.store, login)
    click.echo(f"Removed SIP account {login}")


@sip.command("passwd")
@click.argument("login")
@json_option
@pass_ctx
def sip_passwd(c: Ctx, login: str, as_json: bool) -> None:
    """Give a SIP account a new generated password (shown once)."""
    from vpbx.services import sip_accounts

    account = sip_accounts.new_password(c.store, login)
    emit({"login": login, "password": account.password}, as_json)
