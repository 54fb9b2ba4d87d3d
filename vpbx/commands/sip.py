"""`vpbx sip ...`: SIP accounts (phones and softphones that register to vpbx).

Rule: a thin shell over vpbx.services.sip_accounts; a password is shown once (when it is set), never listed.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx, without_password

SIP_COLUMNS = ("login", "domain", "caller_id", "channels", "transport", "srtp")
CODECS_HELP = ("Codecs the phone may use, preferred first, comma-separated, from g722, opus, alaw, ulaw, gsm, g726 "
               "(opus only where Asterisk has codec_opus); `default`: the install's [sip] codecs.")
TRANSPORT_HELP = ("How Asterisk reaches the phone: udp, tcp or tls (tls needs [sip] tls_cert and tls_key; the phone "
                  "registers to port [sip] tls_port with ;transport=tls).")
SRTP_HELP = "Require SRTP (SDES keys; use with --transport tls): a call offering plain RTP is refused (488)."
DTMF_HELP = ("How the phone sends keys: rfc4733 (RTP events), info (SIP INFO), inband (tones in G.711 audio), auto "
             "(rfc4733 when the phone offers it, else inband).")


@click.group()
def sip() -> None:
    """SIP accounts (phones and softphones that register to vpbx)."""


@sip.command("add")
@click.argument("login")
@click.option("--password", help="Omit to have a strong one generated (shown once).")
@click.option("--caller-id", help="A number of this install presented on outbound calls.")
@click.option("--channels", type=int, default=2, show_default=True, help="Simultaneous calls.")
@click.option("--codecs", help=CODECS_HELP)
@click.option("--dtmf", help=DTMF_HELP + " Default: rfc4733.")
@click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), default="udp", show_default=True,
              help=TRANSPORT_HELP)
@click.option("--srtp/--no-srtp", default=False, show_default=True, help=SRTP_HELP)
@json_option
@pass_ctx
def sip_add(c: Ctx, login: str, password: str | None, caller_id: str | None, channels: int, codecs: str | None,
            dtmf: str | None, transport: str, srtp: bool, as_json: bool) -> None:
    """Add a SIP account; the password is shown once."""
    from vpbx.domain.records import to_dict
    from vpbx.services import sip_accounts

    account = sip_accounts.add(c.store, c.cfg, login, password=password, caller_id=caller_id, channels=channels,
                               codecs=codecs, dtmf=dtmf, transport=transport, srtp=srtp)
    emit(to_dict(account), as_json, (*SIP_COLUMNS, "password"))
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
    """Show one SIP account."""
    emit(without_password(c.store.sip_accounts.get(login)), as_json)


@sip.command("set")
@click.argument("login")
@click.option("--codecs", help=CODECS_HELP)
@click.option("--dtmf", help=DTMF_HELP)
@click.option("--caller-id", help="A number of this install presented on outbound calls; \"\" removes it.")
@click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), help=TRANSPORT_HELP)
@click.option("--srtp/--no-srtp", default=None, help=SRTP_HELP)
@json_option
@pass_ctx
def sip_set(c: Ctx, login: str, codecs: str | None, dtmf: str | None, caller_id: str | None, transport: str | None,
            srtp: bool | None, as_json: bool) -> None:
    """Change a SIP account's codecs, DTMF mode or caller ID (`vpbx reload` applies it)."""
    from vpbx.services import sip_accounts

    account = sip_accounts.update(c.store, c.cfg, login, codecs=codecs, dtmf=dtmf, caller_id=caller_id,
                                  transport=transport, srtp=srtp)
    emit(without_password(account), as_json)


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
