"""`vpbx waitlist ...`: accounts waiting for a kind of number.

Rule: a thin shell over vpbx.services.lifecycle.wait_for_number.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.group()
def waitlist() -> None:
    """Accounts waiting for a kind of number: mailed once when a match is added."""


@waitlist.command("add")
@click.option("--account", "account_", required=True)
@click.option("--country", required=True, help="ISO country code, e.g. UA.")
@click.option("--city", default="")
@click.option("--type", "type_", type=click.Choice(["geographic", "mobile", "tollfree", "other"]))
@json_option
@pass_ctx
def waitlist_add(c: Ctx, account_: str, country: str, city: str, type_: str | None, as_json: bool) -> None:
    """Wait for a number of COUNTRY (and city, type)."""
    from vpbx.services import lifecycle

    emit(lifecycle.wait_for_number(c.store, account_, country, city, type_ or ""), as_json)


@waitlist.command("list")
@json_option
@pass_ctx
def waitlist_list(c: Ctx, as_json: bool) -> None:
    """List waitlist entries (notified ones show the number they were told of)."""
    emit(c.store.shop.list_waitlist(), as_json,
         ("id", "account", "country", "city", "type", "created_at", "notified_at", "notified_number"), title="waitlist")


@waitlist.command("remove")
@click.argument("entry_id", type=int)
@pass_ctx
def waitlist_remove(c: Ctx, entry_id: int) -> None:
    """Remove a waitlist entry."""
    c.store.shop.remove_waitlist(entry_id)
    click.echo(f"Removed waitlist entry {entry_id}")
