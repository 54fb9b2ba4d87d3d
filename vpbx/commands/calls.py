"""`vpbx call simulate` (a dry run of a number's call flow) and `vpbx calls ...` (call records).

Rule: a thin shell over vpbx.services.calls.
"""
from __future__ import annotations

from pathlib import Path

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.group()
def call() -> None:
    """Dry-run call flows."""


@call.command("simulate")
@click.argument("number_", metavar="NUMBER")
@click.option("--from", "caller", default="+10000000000", show_default=True, help="Caller ID.")
@click.option("--dtmf", default="", help="Digits the caller presses, one per menu prompt.")
@click.option("--no-answer", "no_answer", multiple=True, help="Destination that rings out (repeatable).")
@click.option("--busy", multiple=True, help="Destination that is busy (repeatable).")
@click.option("--at", help="When the call comes (default now): 'YYYY-MM-DD HH:MM' in the zone of the number's "
                           "schedules (UTC if none), or an instant with offset, e.g. 2026-12-31T10:00+02:00.")
@json_option
@pass_ctx
def call_simulate(c: Ctx, number_: str, caller: str, dtmf: str, no_answer: tuple[str, ...], busy: tuple[str, ...],
                  at: str | None, as_json: bool) -> None:
    """Run NUMBER's call flow without Asterisk and print every step."""
    from vpbx.services import calls as service

    lines = service.simulate(c.store, number_, caller=caller, dtmf=dtmf, no_answer=no_answer, busy=busy, at=at)
    if as_json:
        emit(lines, True)
    else:
        for line in lines:
            click.echo(line)


@click.group()
def calls() -> None:
    """Call records."""


@calls.command("list")
@click.option("--number", "number_", help="Only calls to/from this number.")
@click.option("--since", help="YYYY-MM-DD (UTC).")
@click.option("--limit", type=int, default=100, show_default=True)
@json_option
@pass_ctx
def calls_list(c: Ctx, number_: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """List call records, newest first."""
    from vpbx.services import calls as service

    rows = service.recent(c.store, number=number_, since=since, limit=limit)
    emit(rows, as_json, ("started_at", "number", "caller", "disposition", "reached", "duration", "billsec",
                         "voicemail", "recording"), title="calls")


@calls.command("stats")
@json_option
@pass_ctx
def calls_stats(c: Ctx, as_json: bool) -> None:
    """Per number: calls, answered, missed, minutes."""
    from vpbx.services import calls as service

    emit(service.stats(c.store), as_json, ("number", "calls", "answered", "missed", "minutes"), title="call stats")


@calls.command("export")
@click.option("--month", required=True, metavar="YYYY-MM", help="The month whose calls to write (by when they "
                                                                "started, UTC).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="csv (a header line, one call a line) or json (one list).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE (mode 0600, replaced whole only once complete) instead of stdout.")
@pass_ctx
def calls_export(c: Ctx, month: str, fmt: str, out: Path | None) -> None:
    """Write a month's call records with their costs (cost in minor units; account and rate prefix of charged calls)."""
    import sys

    from vpbx.commands.output import output_file, write_rows
    from vpbx.services import calls as service

    rows = service.month_records(c.store, month)
    if out is None:
        write_rows(rows, fmt, service.EXPORT_COLUMNS, sys.stdout)
        return
    with output_file(out, "export file") as fh:
        write_rows(rows, fmt, service.EXPORT_COLUMNS, fh)
