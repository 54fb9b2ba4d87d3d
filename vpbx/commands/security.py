"""`vpbx security ...`: brute-force bans (made by the watcher in `vpbx serve`).

Rule: a thin shell over vpbx.services.security; lifting a ban is applied to Asterisk at once
(vpbx.asterisk.security.apply: rewrites <Asterisk config dir>/vpbx-bans/pjsip_bans_vpbx.conf, reloads res_pjsip).
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx

BAN_COLUMNS = ("address", "logins", "failures", "reason", "banned_at", "until")


@click.group()
def security() -> None:
    """Brute-force protection: addresses banned after failed SIP logins."""


@security.command("bans")
@json_option
@pass_ctx
def security_bans(c: Ctx, as_json: bool) -> None:
    """List the bans in force (address, logins it failed, failures, until)."""
    from vpbx.services import security as service

    emit([service.as_row(b) for b in service.bans(c.store)], as_json, BAN_COLUMNS, title="bans")


@security.command("unban")
@click.argument("address")
@pass_ctx
def security_unban(c: Ctx, address: str) -> None:
    """Lift the ban of ADDRESS at once (Asterisk is told over AMI)."""
    from vpbx.asterisk.security import apply
    from vpbx.domain.errors import AsteriskError, ConfigError
    from vpbx.services import security as service

    ban = service.unban(c.store, address)
    try:
        apply(c.cfg, c.store)
    except (AsteriskError, ConfigError) as exc:
        # the same kind (exit 3: Asterisk unreachable; 1: the bans file in Asterisk's config dir not writable)
        raise type(exc)(f"the ban of {ban.address} is lifted in the database, but Asterisk still refuses it: "
                        f"{exc}") from None
    click.echo(f"Unbanned {ban.address}")
