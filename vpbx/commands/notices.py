"""`vpbx notices ...`: e-mail notices to accounts.

Rule: a thin shell over vpbx.services.lifecycle.flush_mail and the outbox (vpbx.services.outbox).
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.group()
def notices() -> None:
    """E-mail notices to accounts (connection, waitlist): kept until sent."""


@notices.command("list")
@click.option("--unsent", is_flag=True)
@json_option
@pass_ctx
def notices_list(c: Ctx, unsent: bool, as_json: bool) -> None:
    """List notices and whether they were sent."""
    emit(c.store.outbox.list_notices(unsent_only=unsent), as_json,
         ("id", "recipient", "subject", "created_at", "sent_at", "attempts", "last_error"), title="notices")


@notices.command("send")
@pass_ctx
def notices_send(c: Ctx) -> None:
    """Try to send every unsent notice now."""
    from vpbx.services import lifecycle

    result = lifecycle.flush_mail(c.store, c.cfg, ignore_backoff=True)
    click.echo(f"{result['sent']} sent, {result['failed']} still waiting")
