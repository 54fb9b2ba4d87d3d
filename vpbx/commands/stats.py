"""`vpbx stats`: numbers by status, revenue by month, calls by number, outbound calls by destination.

Rule: a thin shell over vpbx.services.lifecycle.report.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, money, pass_ctx


@click.command()
@json_option
@pass_ctx
def stats(c: Ctx, as_json: bool) -> None:
    """Numbers by status, revenue by month, calls by number, outbound calls by destination."""
    from vpbx.services import lifecycle

    data = lifecycle.report(c.store)
    if as_json:
        emit({**data, "currency": c.cfg.billing.currency}, True)
        return
    emit(data["numbers_by_status"], False, title="numbers by status")
    emit([{**r, "revenue": money(c, r["revenue"])} for r in data["revenue_by_month"]], False, title="revenue by month")
    emit(data["calls_by_number"], False, title="calls by number")
    emit([{**d, "cost": money(c, d["cost"])} for d in data["outbound_by_destination"]], False,
         ("prefix", "description", "calls", "minutes", "cost"), title="outbound calls by destination")
