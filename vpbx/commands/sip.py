"""`vpbx sip ...`: SIP accounts (phones and softphones that register to vpbx).

Rule: a thin shell over vpbx.services.sip_accounts; a password is shown once (when it is set), never listed.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx, without_password

SIP_COLUMNS = ("login", "domain", "caller_id", "channels")


@click.group()
def sip() -> None:
    """SIP accounts (phones and softphones that register to vpbx)."""


@sip.command("add")
@click.argument("login")
@click.option("--password", help="Omit to have a strong one generated (shown once).")
@click.option("--caller-id", help="A number of this install presented on outbound calls.")
@click.option("--channels", type=int, default=2, show_default=True, help="Simultaneous calls.")
@json_option
@pass_ctx
def sip_add(c: Ctx, login: str, password: str | None, caller_id: str | None, channels: int, as_json: bool) -> None:
    """Add a SIP account; the password is shown once."""
    from vpbx.domain.records import to_dict
    from vpbx.services import sip_accounts

    account = sip_accounts.add(c.store, c.cfg, login, password=password, caller_id=caller_id, channels=channels)
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
