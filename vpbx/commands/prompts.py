"""`vpbx prompt ...`: sound prompts installed into Asterisk's sounds dir.

Rule: a thin shell over vpbx.services.prompts.
"""
from __future__ import annotations

from pathlib import Path

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.group()
def prompt() -> None:
    """Sound prompts (greetings, menus): upload in any format, installed as 8 kHz mono WAV."""


@prompt.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--language", help="Language dir (default: the config's language).")
@json_option
@pass_ctx
def prompt_add(c: Ctx, name: str, file: str, language: str | None, as_json: bool) -> None:
    """Convert FILE (WAV, FLAC, OGG, MP3...) to 8 kHz 16-bit mono and install it as prompt NAME.

    A prompt lasts at most 10 minutes (the config's [prompts] max_seconds)."""
    from vpbx.services import prompts

    path = prompts.add(c.cfg.asterisk_sounds_dir, language or c.cfg.language, name, Path(file),
                       max_seconds=c.cfg.prompt_max_seconds)
    emit({"name": name, "language": language or c.cfg.language, "path": str(path)}, as_json)


@prompt.command("list")
@json_option
@pass_ctx
def prompt_list(c: Ctx, as_json: bool) -> None:
    """List installed prompts."""
    from vpbx.services import prompts

    emit(prompts.list_prompts(c.cfg.asterisk_sounds_dir), as_json, ("name", "language", "seconds"), title="prompts")


@prompt.command("remove")
@click.argument("name")
@click.option("--language", help="Only this language (default: all).")
@pass_ctx
def prompt_remove(c: Ctx, name: str, language: str | None) -> None:
    """Remove a prompt (refused while a number, IVR, account or blocklist rule plays it)."""
    from vpbx.services import prompts

    for path in prompts.remove(c.cfg.asterisk_sounds_dir, name, language, store=c.store):
        click.echo(f"Removed {path}")
