"""`vpbx ivr ...`: voice menus.

Rule: a thin shell over vpbx.services.ivrs.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.group()
def ivr() -> None:
    """Voice menus: a prompt and what each digit does."""


@ivr.command("add")
@click.argument("name")
@click.option("--prompt", required=True, help="Prompt played as the menu.")
@click.option("--option", "options", multiple=True, help="DIGIT=DEST, e.g. 1=sip:alice (repeatable).")
@click.option("--timeout", type=click.IntRange(1, 60), default=5, show_default=True,
              help="Seconds to wait for a digit.")
@click.option("--retries", type=click.IntRange(1, 10), default=3, show_default=True)
@click.option("--invalid-prompt", help="Prompt for an invalid choice (default: built-in).")
@click.option("--extensions", is_flag=True, help="Callers may also type an extension / organisation ID, ended by #.")
@json_option
@pass_ctx
def ivr_add(c: Ctx, name: str, prompt: str, options: tuple[str, ...], timeout: int, retries: int,
            invalid_prompt: str | None, extensions: bool, as_json: bool) -> None:
    """Add an IVR menu."""
    from vpbx.services import ivrs

    record = ivrs.add(c.store, name, prompt, options, timeout=timeout, retries=retries, invalid_prompt=invalid_prompt,
                      extensions=extensions, sounds_dir=c.cfg.asterisk_sounds_dir)
    emit(record, as_json)


@ivr.command("list")
@json_option
@pass_ctx
def ivr_list(c: Ctx, as_json: bool) -> None:
    """List IVR menus."""
    emit(c.store.ivrs.all(), as_json, ("name", "prompt", "options", "timeout", "retries", "extensions"), title="IVRs")


@ivr.command("show")
@click.argument("name")
@json_option
@pass_ctx
def ivr_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show one IVR menu."""
    emit(c.store.ivrs.get(name), as_json)


@ivr.command("set")
@click.argument("name")
@click.option("--prompt", help="Prompt played as the menu.")
@click.option("--option", "options", multiple=True, help="DIGIT=DEST: add or replace the option of DIGIT (repeatable).")
@click.option("--remove-option", "remove_keys", multiple=True, metavar="DIGIT",
              help="Remove the option of DIGIT (repeatable).")
@click.option("--timeout", type=click.IntRange(1, 60), help="Seconds to wait for a digit.")
@click.option("--retries", type=click.IntRange(1, 10))
@click.option("--invalid-prompt", help="Prompt for an invalid choice; '' returns to the built-in.")
@click.option("--extensions/--no-extensions", default=None,
              help="Callers may also type an extension / organisation ID, ended by #.")
@json_option
@pass_ctx
def ivr_set(c: Ctx, name: str, prompt: str | None, options: tuple[str, ...], remove_keys: tuple[str, ...],
            timeout: int | None, retries: int | None, invalid_prompt: str | None, extensions: bool | None,
            as_json: bool) -> None:
    """Change an IVR menu: prompt, options (added, replaced or removed), timeout, retries, invalid prompt,
    extensions."""
    from vpbx.services import ivrs

    record = ivrs.update(c.store, name, prompt=prompt, options=options, remove_keys=remove_keys, timeout=timeout,
                         retries=retries, invalid_prompt=invalid_prompt, extensions=extensions,
                         sounds_dir=c.cfg.asterisk_sounds_dir)
    emit(record, as_json)


@ivr.command("remove")
@click.argument("name")
@pass_ctx
def ivr_remove(c: Ctx, name: str) -> None:
    """Remove an IVR (refused while a route uses it)."""
    from vpbx.services import ivrs

    ivrs.remove(c.store, name)
    click.echo(f"Removed IVR {name}")
