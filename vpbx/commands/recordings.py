"""`vpbx recording ...`: recorded calls - list, export, remove.

Rule: a thin shell over vpbx.services.recordings. Which calls are recorded is set on numbers, SIP accounts and
accounts (`vpbx number|sip|account set ... --record`); recordings past `[recording] retention_days` are deleted by
`vpbx billing run`.
"""
from __future__ import annotations

from pathlib import Path

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx

RECORDING_COLUMNS = ("id", "started_at", "number", "caller", "duration", "bytes", "expires_at", "call_id")


@click.group()
def recording() -> None:
    """Recorded calls: list, export, remove."""


@recording.command("list")
@click.option("--number", "number_", help="Only recordings of calls to or from this number.")
@click.option("--since", help="Only calls answered on or after this day (YYYY-MM-DD, UTC).")
@click.option("--limit", type=click.IntRange(1), help="At most this many, newest first.")
@json_option
@pass_ctx
def recording_list(c: Ctx, number_: str | None, since: str | None, limit: int | None, as_json: bool) -> None:
    """List recordings, newest first."""
    from vpbx.services import recordings

    rows = recordings.list_recordings(c.store, number=number_, since=since, limit=limit)
    emit(rows, as_json, RECORDING_COLUMNS, title="recordings")


@recording.command("export")
@click.argument("rec_id", metavar="ID", type=int)
@click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@pass_ctx
def recording_export(c: Ctx, rec_id: int, file: Path, force: bool) -> None:
    """Copy recording ID to FILE (a WAV file, mode 0600)."""
    from vpbx.services import recordings

    target = recordings.export(c.store, rec_id, file, force=force)
    click.echo(f"Exported recording {rec_id} to {target}")


@recording.command("remove")
@click.argument("rec_ids", metavar="ID...", type=int, nargs=-1, required=True)
@pass_ctx
def recording_remove(c: Ctx, rec_ids: tuple[int, ...]) -> None:
    """Remove recordings (the audio and the record): all the IDs given, or none when one is unknown."""
    from vpbx.services import recordings

    removed = recordings.remove(c.store, rec_ids)
    click.echo(f"Removed recording{'s' if len(removed) != 1 else ''} {', '.join(str(r.id) for r in removed)}")
