"""`vpbx group ...`: ring groups.

Rule: a thin shell over vpbx.services.groups.
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.group()
def group() -> None:
    """Ring groups (departments): members and a strategy."""


@group.command("add")
@click.argument("name")
@click.option("--member", "members", multiple=True, required=True,
              help="sip:LOGIN | tel:+E164 | uri:sip:... (repeatable)")
@click.option("--strategy", type=click.Choice(["simultaneous", "sequential"]), default="simultaneous",
              show_default=True)
@click.option("--timeout", type=click.IntRange(1, 600), default=20, show_default=True,
              help="Seconds: overall when simultaneous, per member when sequential.")
@json_option
@pass_ctx
def group_add(c: Ctx, name: str, members: tuple[str, ...], strategy: str, timeout: int, as_json: bool) -> None:
    """Add a ring group."""
    from vpbx.services import groups

    emit(groups.add(c.store, name, members, strategy=strategy, timeout=timeout), as_json)


@group.command("list")
@json_option
@pass_ctx
def group_list(c: Ctx, as_json: bool) -> None:
    """List ring groups."""
    emit(c.store.groups.all(), as_json, ("name", "strategy", "timeout", "members"), title="groups")


@group.command("show")
@click.argument("name")
@json_option
@pass_ctx
def group_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show one ring group."""
    emit(c.store.groups.get(name), as_json)


@group.command("set")
@click.argument("name")
@click.option("--member", "members", multiple=True,
              help="sip:LOGIN | tel:+E164 | uri:sip:... (repeatable; replaces the members).")
@click.option("--strategy", type=click.Choice(["simultaneous", "sequential"]))
@click.option("--timeout", type=click.IntRange(1, 600), help="Seconds: overall when simultaneous, per member when "
                                                              "sequential.")
@json_option
@pass_ctx
def group_set(c: Ctx, name: str, members: tuple[str, ...], strategy: str | None, timeout: int | None,
              as_json: bool) -> None:
    """Change a ring group: members (the whole list), strategy, timeout."""
    from vpbx.services import groups

    emit(groups.update(c.store, name, members=members or None, strategy=strategy, timeout=timeout), as_json)


@group.command("remove")
@click.argument("name")
@pass_ctx
def group_remove(c: Ctx, name: str) -> None:
    """Remove a ring group (refused while a route uses it)."""
    from vpbx.services import groups

    groups.remove(c.store, name)
    click.echo(f"Removed group {name}")
