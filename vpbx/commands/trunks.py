"""`vpbx trunk ...`: third-party SIP trunks.

Rule: a thin shell over vpbx.services.trunks; a trunk's password is never printed, and can be read from a file or
stdin (`--password-file`) so it need not appear in `ps`.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx, password_input, without_password

TRUNK_COLUMNS = ("name", "server", "port", "transport", "login", "register", "account")
PASSWORD_FILE_HELP = ("Read the password from FILE (its first line), or from stdin with - (a hidden prompt on a "
                      "terminal).")
ACCOUNT_HELP = ("A customer's own trunk: the account (open) whose outbound calls through it are not charged (the "
                "customer pays that operator). Without it the trunk is the provider's.")


@click.group()
def trunk() -> None:
    """Third-party SIP trunks (a provider's line to dial out and receive calls)."""


@trunk.command("add")
@click.argument("name")
@click.option("--server", required=True, help="Provider's SIP host or IP.")
@click.option("--port", type=int, default=5060, show_default=True)
@click.option("--login", required=True)
@click.option("--password", help="The provider's password (or --password-file).")
@click.option("--password-file", metavar="FILE|-", help=PASSWORD_FILE_HELP)
@click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]), default="udp", show_default=True)
@click.option("--register/--no-register", default=True, show_default=True, help="Register to the provider.")
@click.option("--srtp/--no-srtp", default=False, show_default=True,
              help="Require SRTP (SDES) with the provider (use with --transport tls).")
@click.option("--account", metavar="NAME", help=ACCOUNT_HELP)
@json_option
@pass_ctx
def trunk_add(c: Ctx, name: str, server: str, port: int, login: str, password: str | None, password_file: str | None,
              transport: str, register: bool, srtp: bool, account: str | None, as_json: bool) -> None:
    """Add a provider's SIP trunk."""
    from vpbx.services import trunks

    password = password_input(password, password_file, f"trunk {name}")
    if password is None:
        raise click.UsageError("give --password or --password-file")
    record = trunks.add(c.store, name, server=server, port=port, login=login, password=password, transport=transport,
                        register=register, srtp=srtp, account=account)
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


@trunk.command("set")
@click.argument("name")
@click.option("--server", help="Provider's SIP host or IP.")
@click.option("--port", type=int, help="1-65535.")
@click.option("--login")
@click.option("--password", help="A new password (or --password-file).")
@click.option("--password-file", metavar="FILE|-", help=PASSWORD_FILE_HELP)
@click.option("--transport", type=click.Choice(["udp", "tcp", "tls"]))
@click.option("--register/--no-register", default=None, help="Register to the provider.")
@click.option("--srtp/--no-srtp", default=None, help="Require SRTP (SDES) with the provider.")
@click.option("--account", metavar="NAME", help=ACCOUNT_HELP)
@click.option("--no-account", is_flag=True, help="The provider's trunk again: calls through it are charged.")
@json_option
@pass_ctx
def trunk_set(c: Ctx, name: str, server: str | None, port: int | None, login: str | None, password: str | None,
              password_file: str | None, transport: str | None, register: bool | None, srtp: bool | None,
              account: str | None, no_account: bool, as_json: bool) -> None:
    """Change a trunk: server, port, login, password, transport, registration, SRTP (`vpbx reload` applies it), and
    whose own trunk it is (the engine applies that to the next call)."""
    from vpbx.services import trunks

    if account is not None and no_account:
        raise click.UsageError("give --account NAME or --no-account, not both")
    record = trunks.update(c.store, name, server=server, port=port, login=login,
                           password=password_input(password, password_file, f"trunk {name}"), transport=transport,
                           register=register, srtp=srtp, account=account, no_account=no_account)
    emit(without_password(record), as_json)


@trunk.command("remove")
@click.argument("name")
@pass_ctx
def trunk_remove(c: Ctx, name: str) -> None:
    """Remove a trunk (refused while numbers use it)."""
    from vpbx.services import trunks

    trunks.remove(c.store, name)
    click.echo(f"Removed trunk {name}")
