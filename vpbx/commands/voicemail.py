"""`vpbx voicemail ...`: the voicemail outbox.

Rule: a thin shell over vpbx.services.outbox.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.group()
def voicemail() -> None:
    """Voicemail outbox: messages are kept until e-mailed."""


@voicemail.command("list")
@click.option("--pending", is_flag=True, help="Only messages not delivered yet.")
@json_option
@pass_ctx
def voicemail_list(c: Ctx, pending: bool, as_json: bool) -> None:
    """List recorded messages and their delivery state."""
    rows = c.store.outbox.list_voicemails(undelivered_only=pending)
    emit(rows, as_json, ("recording", "number", "caller", "created_at", "duration", "delivered_at", "attempts",
                         "last_error"), title="voicemails")


@voicemail.command("retry")
@click.argument("recording", required=False)
@pass_ctx
def voicemail_retry(c: Ctx, recording: str | None) -> None:
    """Make undelivered messages (or one RECORDING) due now; the running engine sends them within seconds."""
    from vpbx.services import outbox

    count = outbox.retry_now(c.store, "voicemail", recording)
    click.echo(f"{count} message(s) queued for delivery")
