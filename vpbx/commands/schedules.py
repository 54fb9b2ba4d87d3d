"""`vpbx schedule ...`: business hours that routes branch on (`hours:NAME?open=DEST&closed=DEST`).

Rule: a thin shell over vpbx.services.schedules.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx

OPEN_HELP = "DAYS HH:MM-HH:MM, e.g. --open mon-fri 09:00-18:00 or --open sat 10:00-13:00,14:00-16:00 (repeatable)."


@click.group()
def schedule() -> None:
    """Business hours: open hours per weekday, holidays and closed dates, in a time zone."""


@schedule.command("add")
@click.argument("name")
@click.option("--tz", required=True, help="Time zone of the hours, e.g. Europe/Kyiv.")
@click.option("--open", "open_hours", nargs=2, multiple=True, metavar="DAYS HOURS", help=OPEN_HELP)
@click.option("--closed", multiple=True, metavar="YYYY-MM-DD", help="A one-off closed date (repeatable).")
@click.option("--holiday", "holidays", multiple=True, metavar="MM-DD", help="Closed every year (repeatable).")
@json_option
@pass_ctx
def schedule_add(c: Ctx, name: str, tz: str, open_hours: tuple[tuple[str, str], ...], closed: tuple[str, ...],
                 holidays: tuple[str, ...], as_json: bool) -> None:
    """Add a schedule."""
    from vpbx.services import schedules

    emit(schedules.add(c.store, name, tz, open_hours, closed=closed, holidays=holidays), as_json)


@schedule.command("set")
@click.argument("name")
@click.option("--tz", help="Time zone of the hours.")
@click.option("--open", "open_hours", nargs=2, multiple=True, metavar="DAYS HOURS",
              help="Replaces every open range: " + OPEN_HELP)
@click.option("--closed", multiple=True, metavar="YYYY-MM-DD", help="Replaces the closed dates (`none`: no dates).")
@click.option("--holiday", "holidays", multiple=True, metavar="MM-DD", help="Replaces the holidays (`none`: none).")
@json_option
@pass_ctx
def schedule_set(c: Ctx, name: str, tz: str | None, open_hours: tuple[tuple[str, str], ...], closed: tuple[str, ...],
                 holidays: tuple[str, ...], as_json: bool) -> None:
    """Change a schedule: each option given replaces that part."""
    from vpbx.services import schedules

    emit(schedules.set_(c.store, name, tz=tz, open_hours=open_hours, closed=closed, holidays=holidays), as_json)


@schedule.command("list")
@json_option
@pass_ctx
def schedule_list(c: Ctx, as_json: bool) -> None:
    """List schedules, and whether each is open now."""
    from vpbx.services import schedules

    emit(schedules.listing(c.store), as_json, ("name", "tz", "open", "closed", "holidays", "now"), title="schedules")


@schedule.command("show")
@click.argument("name")
@json_option
@pass_ctx
def schedule_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show one schedule: its hours, whether it is open now, what branches on it."""
    from vpbx.services import schedules

    emit(schedules.show(c.store, name), as_json)


@schedule.command("remove")
@click.argument("name")
@pass_ctx
def schedule_remove(c: Ctx, name: str) -> None:
    """Remove a schedule (refused while a route uses it)."""
    from vpbx.services import schedules

    schedules.remove(c.store, name)
    click.echo(f"Removed schedule {name}")
