"""`vpbx backup FILE` and `vpbx restore FILE`: one archive of the whole install (database, config, prompts, documents,
voicemail spool) and its restore into a fresh directory.

Rule: a thin shell over vpbx.services.backup.
"""
from __future__ import annotations

from pathlib import Path

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@json_option
@pass_ctx
def backup(c: Ctx, file: str, force: bool, as_json: bool) -> None:
    """Write one archive (tar.gz, mode 0600) of the database, config, prompts and documents; online."""
    from vpbx.services import backup as service

    emit(service.backup(c.store, c.cfg, Path(file), force=force), as_json)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory for the restored vpbx.toml, vpbx.db and documents.")
@click.option("--sounds-dir", type=click.Path(file_okay=False),
              help="Put the prompts here (default: the archived config's sounds dir); the config is rewritten to it.")
@click.option("--force", is_flag=True, help="Replace an existing config, database, documents or prompts.")
@json_option
def restore(file: str, directory: str, sounds_dir: str | None, force: bool, as_json: bool) -> None:
    """Restore an archive made by `vpbx backup` into a directory (checked first; all or nothing)."""
    from vpbx.services import backup as service

    emit(service.restore(Path(file), Path(directory), Path(sounds_dir) if sounds_dir else None, force=force),
         as_json)
