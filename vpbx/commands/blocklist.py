"""`vpbx block ...`: the caller blocklist (add, list, remove rules).

Rule: a thin shell over vpbx.services.blocklist; the engine applies rules to the next call (no reload).
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, pass_ctx


@click.group()
def block() -> None:
    """Caller blocklist: refuse calls from numbers, prefixes or withheld callers.

    A blocked caller is refused before answer (SIP 403), or, when the rule has a prompt, hears it and is hung up.
    Every matching rule refuses; the most specific one (number, then account, then install-wide; exact before prefix,
    longer prefix first) is counted and its prompt played.
    """


@block.command("add")
@click.argument("caller")
@click.option("--number", "number_", help="Only calls to this number of the install.")
@click.option("--account", help="Only calls to the numbers this customer's account holds.")
@click.option("--prefix", is_flag=True, help="CALLER is a prefix (+7495): every caller whose number starts with it.")
@click.option("--prompt", help="Answer, play this prompt, hang up (default: refuse before answer, SIP 403).")
@click.option("--comment", default="", help="Why (shown by `vpbx block list`).")
@json_option
@pass_ctx
def block_add(c: Ctx, caller: str, number_: str | None, account: str | None, prefix: bool, prompt: str | None,
              comment: str, as_json: bool) -> None:
    """Block CALLER (an E.164 number, a prefix with --prefix, or `anonymous` for withheld numbers), install-wide
    unless --number or --account."""
    from vpbx.services import blocklist as service

    rule = service.add(c.store, caller, number=number_, account=account, prefix=prefix, prompt=prompt,
                       comment=comment)
    emit(service.as_row(rule), as_json, service.COLUMNS)


@block.command("list")
@click.option("--number", "number_", help="Only the rules that cover calls to this number.")
@json_option
@pass_ctx
def block_list(c: Ctx, number_: str | None, as_json: bool) -> None:
    """List the rules, with the calls each refused and when it last did."""
    from vpbx.services import blocklist as service

    emit([service.as_row(r) for r in service.rules(c.store, number_)], as_json, service.COLUMNS,
         title="block rules")


@block.command("remove")
@click.argument("targets", nargs=-1, required=True, metavar="ID|CALLER...")
@pass_ctx
def block_remove(c: Ctx, targets: tuple[str, ...]) -> None:
    """Remove rules by ID, or by caller when it has one rule (all or none)."""
    from vpbx.services import blocklist as service

    for rule in service.remove(c.store, targets):
        click.echo(f"Removed block rule {rule.id} ({rule.caller_label} {rule.where})")
