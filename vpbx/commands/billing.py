"""`vpbx billing run`: the daily renewal job.

Rule: a thin shell over vpbx.services.lifecycle.billing_run.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, day, emit, json_option, money, now, pass_ctx


@click.group()
def billing() -> None:
    """The daily renewal job."""


@billing.command("run")
@click.option("--date", "on", metavar="YYYY-MM-DD",
              help="The day to bill: today (default) or up to 31 days back, to catch up a missed run.")
@json_option
@pass_ctx
def billing_run(c: Ctx, on: str | None, as_json: bool) -> None:
    """Renew numbers due by DATE, suspend accounts in debt, end expired trials, end quarantines; run it daily
    (cron or a systemd timer). Running it twice for a day charges once."""
    from vpbx.services import lifecycle

    summary = lifecycle.billing_run(c.store, c.cfg, day(None), now(), on=day(on) if on is not None else None)
    summary["mail"] = lifecycle.flush_mail(c.store, c.cfg)
    if as_json:
        emit(summary, True)
        return
    click.echo(f"Billing run {summary['date']}: {len(summary['renewed'])} renewal(s), {money(c, summary['charged'])}")
    for key in ("suspended", "credit_refilled", "trials_ended", "reservations_lapsed", "available_again"):
        if summary[key]:
            click.echo(f"{key.replace('_', ' ').capitalize()}: {', '.join(summary[key])}")
    if summary.get("calls_rated") or summary.get("outbound_rated"):
        click.echo(f"Calls charged: {summary.get('calls_rated', 0)} toll-free, {summary.get('outbound_rated', 0)} "
                   f"outbound")
    if summary.get("recordings_purged"):
        click.echo(f"Recordings purged (past retention): {summary['recordings_purged']}")
    if summary.get("recordings_error"):
        click.echo(f"Warning: call recordings not purged: {summary['recordings_error']}", err=True)
