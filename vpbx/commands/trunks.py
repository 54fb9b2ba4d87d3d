"""`vpbx trunk ...`: third-party SIP trunks.

Rule: a thin shell over vpbx.services.trunks; a trunk's password is never printed.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx, without_password

TRUNK_COLUMNS = ("name", "server", "port", "transport", "login", "register")


@click.group()
def trunk() -> None:
    """Third-party SIP trunks (a provider's line to dial out and receive calls)."""


@trunk.command("add")
@click.argument("name")
@click.option("--server", required=True, help="Provider's SIP host or IP.")
@click.option("--port", type=int, default=5060, show_default=True)
@click.option("--login", required=True)
@click.option("--password", required=True)
@click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), default="udp", show_default=True)
@click.option("--register/--no-register", default=True, show_default=True, help="Register to the provider.")
@click.option("--srtp/--no-srtp", default=False, show_default=True,
              help="Require SRTP (SDES) with the provider (use with --transport tls).")
@json_option
@pass_ctx
def trunk_add(c: Ctx, name: str, server: str, port: int, login: str, password: str, transport: str, register: bool,
              srtp: bool, as_json: bool) -> None:
    """Add a provider's SIP trunk."""
    from vpbx.services import trunks

    record = trunks.add(c.store, name, server=server, port=port, login=login, password=password, transport=transport,
                        register=register, srtp=srtp)
    emit(without_password(record), as_json, TRUNK_COLUMNS)


@trunk.command("list")
@json_option
@pass_ctx
def trunk_list(c: Ctx, as_json: bool) -> None:
    """List trunks."""
    emit([without_password(t) for t in c.store.trunks.all()], as_json, TRUNK_COLUMNS, title="trunks")


@trunk.command("show")
@click.argument("name")
@json_option
@pass_ctx
def trunk_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show one trunk."""
    emit(without_password(c.store.trunks.get(name)), as_json)


@trunk.command("remove")
@click.argument("name")
@pass_ctx
def trunk_remove(c: Ctx, name: str) -> None:
    """Remove a trunk (refused while numbers use it)."""
    from vpbx.services import trunks

    trunks.remove(c.store, name)
    click.echo(f"Removed trunk {name}")
