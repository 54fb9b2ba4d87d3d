"""`vpbx number ...`: the install's phone numbers - inventory (add, import, list, show, set, remove), routing (route,
forward) and lifecycle (reserve, assign, trial, activate, release).

Rule: a thin shell over vpbx.services.numbers, .routing and .lifecycle.
"""
from __future__ import annotations

from typing import Any

import click

from vpbx.commands.output import (
    Ctx,
    day,
    emit,
    flush_notices,
    json_option,
    money,
    now,
    pass_ctx,
    progress_bar,
    read_text,
    warn,
)

NUMBER_COLUMNS = ("number", "type", "category", "city", "operator", "channels", "direction", "trunk", "route", "status",
                  "account", "comment")
NUMBER_STATUSES = ("available", "reserved", "pending_documents", "active", "suspended", "trial", "released")
NUMBER_TYPES = ("geographic", "mobile", "tollfree", "other")
ROUTING_COLUMNS = ("number", "route", "forward_to", "forward_mode", "fallback")


@click.group()
def number() -> None:
    """Phone numbers: add, list, change, route and remove."""


def _announce(c: Ctx, notices: int) -> None:
    """New numbers for sale: waitlisted accounts that match were given one e-mail each; send them now (or keep them
    to retry)."""
    if notices:
        from vpbx.services import lifecycle

        lifecycle.flush_mail(c.store, c.cfg)


# ---- inventory -------------------------------------------------------------------------------------------------
@number.command("add")
@click.argument("number_", metavar="NUMBER")
@click.option("--channels", type=int, help="Simultaneous calls (minimum and default 4).")
@click.option("--direction", type=click.Choice(["in", "out", "both"]),
              help="Default in; toll-free numbers are in only.")
@click.option("--trunk", help="Trunk the number is served by and dials out through.")
@click.option("--comment", help="Free text.")
@click.option("--city", help="Override the city phonenumbers reports.")
@click.option("--operator", help="Override the operator phonenumbers reports.")
@click.option("--type", "type_", type=click.Choice(NUMBER_TYPES), help="Override the type.")
@json_option
@pass_ctx
def number_add(c: Ctx, number_: str, channels: int | None, direction: str | None, trunk: str | None,
               comment: str | None, city: str | None, operator: str | None, type_: str | None, as_json: bool) -> None:
    """Add an E.164 NUMBER such as +380441234567."""
    from vpbx.services import numbers

    record = numbers.build(number_, channels=channels, direction=direction, trunk=trunk, comment=comment, city=city,
                           operator=operator, type=type_)
    added = numbers.add(c.store, record)
    emit(added.numbers[0], as_json, NUMBER_COLUMNS)
    _announce(c, added.notices)


@number.command("list")
@click.option("--category", type=click.Choice(["regular", "bronze", "silver", "gold", "platinum"]))
@click.option("--type", "type_", type=click.Choice(NUMBER_TYPES))
@click.option("--city")
@click.option("--operator")
@click.option("--contains", help="Digits the number contains.")
@click.option("--status", type=click.Choice(NUMBER_STATUSES), help="Lifecycle status, e.g. available (for sale).")
@click.option("--account", help="Numbers held by this account.")
@json_option
@pass_ctx
def number_list(c: Ctx, category: str | None, type_: str | None, city: str | None, operator: str | None,
                contains: str | None, status: str | None, account: str | None, as_json: bool) -> None:
    """List numbers, optionally filtered."""
    from vpbx.services import numbers

    rows = numbers.search(c.store, category=category, type=type_, city=city, operator=operator, contains=contains,
                          status=status, account=account)
    emit(rows, as_json, NUMBER_COLUMNS, title="numbers")


@number.command("show")
@click.argument("number_", metavar="NUMBER")
@json_option
@pass_ctx
def number_show(c: Ctx, number_: str, as_json: bool) -> None:
    """Show one number with its routing."""
    emit(c.store.numbers.get(number_), as_json)


@number.command("set")
@click.argument("numbers_", nargs=-1, required=True, metavar="NUMBER...")
@click.option("--channels", type=int)
@click.option("--direction", type=click.Choice(["in", "out", "both"]))
@click.option("--comment")
@click.option("--trunk", help="Trunk name; '' to clear.")
@click.option("--requires-documents/--no-requires-documents", default=None,
              help="The number is connected only after the end user's documents are checked.")
@click.option("--lead-days", type=click.IntRange(0, 60), help="Days the document check takes (told to the customer).")
@click.option("--record/--no-record", default=None, help="Record calls to and from the number (`vpbx recording`).")
@click.option("--record-prompt", metavar="PROMPT|none", help="Prompt announcing the recording before the call is "
                                                             "connected; none: no announcement.")
@json_option
@pass_ctx
def number_set(c: Ctx, numbers_: tuple[str, ...], channels: int | None, direction: str | None, comment: str | None,
               trunk: str | None, requires_documents: bool | None, lead_days: int | None, record: bool | None,
               record_prompt: str | None, as_json: bool) -> None:
    """Change one or several numbers at once (all or nothing)."""
    from vpbx.services import numbers

    if all(v is None for v in (channels, direction, comment, trunk, requires_documents, lead_days, record,
                               record_prompt)):
        raise click.UsageError("nothing to change; give --channels, --direction, --comment, --trunk, "
                               "--requires-documents, --lead-days, --record/--no-record or --record-prompt")
    updated = numbers.update(c.store, numbers_, channels=channels, direction=direction, comment=comment, trunk=trunk,
                             requires_documents=requires_documents, lead_days=lead_days, record_calls=record,
                             record_prompt=record_prompt, cfg=c.cfg)
    emit(updated, as_json, NUMBER_COLUMNS, title="numbers")


@number.command("remove")
@click.argument("number_", metavar="NUMBER")
@pass_ctx
def number_remove(c: Ctx, number_: str) -> None:
    """Remove a number (refused while something uses it)."""
    from vpbx.services import numbers

    numbers.remove(c.store, number_)
    click.echo(f"Removed number {number_}")


@number.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@json_option
@pass_ctx
def number_import(c: Ctx, csv_file: str, as_json: bool) -> None:
    """Bulk-add numbers from a CSV with a header: number[,channels,direction,trunk,comment,city,operator,type].

    All rows are checked first; one bad row and nothing is imported.
    """
    from vpbx.services import numbers

    text = read_text(csv_file, "CSV file", fix='save it as UTF-8 ("CSV UTF-8")', newline="")
    with progress_bar() as show:
        added = numbers.import_csv(c.store, text, csv_file, progress=show)
    _announce(c, added.notices)
    if as_json:
        emit({"imported": len(added.numbers)}, True)
    else:
        click.echo(f"Imported {len(added.numbers)} numbers")


# ---- routing ---------------------------------------------------------------------------------------------------
fallback_option = click.option("--fallback", help="When forwarding fails: hangup | play:PROMPT | voicemail.")
vm_option = click.option("--vm-email", "vm_emails", multiple=True, help="Voicemail recipient (repeatable).")


@number.command("route")
@click.argument("numbers_", nargs=-1, required=True, metavar="NUMBER...")
@click.argument("dest")
@click.option("--greeting", help="Prompt played (after answering) before the route; '' to remove.")
@fallback_option
@vm_option
@json_option
@pass_ctx
def number_route(c: Ctx, numbers_: tuple[str, ...], dest: str, greeting: str | None, fallback: str | None,
                 vm_emails: tuple[str, ...], as_json: bool) -> None:
    """Route one or several NUMBERS to DEST.

    DEST: sip:LOGIN | group:NAME | ivr:NAME | tel:+E164 | uri:sip:user@host[:port] | voicemail | play:PROMPT | hangup
    """
    from vpbx.services import routing

    updated = routing.route(c.store, numbers_, dest, greeting=greeting, fallback=fallback, vm_emails=vm_emails,
                            sounds_dir=c.cfg.asterisk_sounds_dir)
    emit(updated, as_json, ROUTING_COLUMNS, title="numbers")


@number.command("forward")
@click.argument("numbers_", nargs=-1, required=True, metavar="NUMBER...")
@click.option("--to", "targets", multiple=True, required=True, help="Destination (repeatable): sip:, tel:, uri:.")
@click.option("--mode", type=click.Choice(["simultaneous", "sequential"]), required=True)
@click.option("--timeout", type=click.IntRange(1, 600), default=30, show_default=True,
              help="Seconds: overall when simultaneous, per target when sequential.")
@click.option("--greeting", help="Prompt played before forwarding; '' to remove.")
@fallback_option
@vm_option
@json_option
@pass_ctx
def number_forward(c: Ctx, numbers_: tuple[str, ...], targets: tuple[str, ...], mode: str, timeout: int,
                   greeting: str | None, fallback: str | None, vm_emails: tuple[str, ...], as_json: bool) -> None:
    """Forward one or several numbers to one or more targets, all at once or one after another."""
    from vpbx.services import routing

    updated = routing.forward(c.store, numbers_, targets, mode, timeout, greeting=greeting, fallback=fallback,
                              vm_emails=vm_emails, sounds_dir=c.cfg.asterisk_sounds_dir)
    emit(updated, as_json, ROUTING_COLUMNS, title="numbers")


# ---- lifecycle -------------------------------------------------------------------------------------------------
@number.command("assign")
@click.argument("numbers_", nargs=-1, required=True, metavar="NUMBER...")
@click.option("--account", "account_", required=True)
@click.option("--end-user", help="Full name of the person responsible for the number.")
@click.option("--m2m", help="ID of the M2M device the number is for (instead of --end-user).")
@click.option("--months", type=click.Choice(["1", "3", "6", "12"]), default="1", show_default=True,
              help="Prepaid months (3, 6, 12 are discounted).")
@click.option("--plan", help="A plan of the tariff (see `vpbx tariff show`) instead of the fee by type and category.")
@click.option("--date", "on", metavar="YYYY-MM-DD",
              help="Order date: today (default) or up to 31 days back (an order taken earlier).")
@json_option
@pass_ctx
def number_assign(c: Ctx, numbers_: tuple[str, ...], account_: str, end_user: str | None, m2m: str | None, months: str,
                  plan: str | None, on: str | None, as_json: bool) -> None:
    """Sell NUMBER(s) to an account: connection fee + first period in one transaction (refused if funds are short)."""
    from dataclasses import asdict

    from vpbx.services import lifecycle

    q = lifecycle.assign(c.store, c.cfg, list(numbers_), account_, day(None), end_user=end_user, m2m=m2m,
                         months=int(months), plan=plan, on=day(on) if on is not None else None)
    flush_notices(c)
    if as_json:
        emit({"lines": [asdict(line) for line in q.lines], "total": q.total, "discount_percent": q.discount_percent,
              "currency": c.cfg.billing.currency, "balance": c.store.accounts.get(account_).balance}, True)
        return
    rows: list[dict[str, Any]] = [
        {"number": line.number, "connection": money(c, line.connection_fee), "period": money(c, line.period_fee),
         "discount": money(c, line.discount), "total": money(c, line.total), "paid_until": line.paid_until,
         "status": c.store.numbers.get(line.number).status} for line in q.lines]
    emit(rows, False, title=f"order for {account_}")
    click.echo(f"Charged {money(c, q.total)}; balance {money(c, c.store.accounts.get(account_).balance)}")


@number.command("reserve")
@click.argument("numbers_", nargs=-1, required=True, metavar="NUMBER...")
@click.option("--account", "account_", required=True)
@click.option("--hours", type=int, default=24, show_default=True)
@json_option
@pass_ctx
def number_reserve(c: Ctx, numbers_: tuple[str, ...], account_: str, hours: int, as_json: bool) -> None:
    """Hold available NUMBER(s) for an account (free) until it orders them with `number assign`."""
    from vpbx.services import lifecycle

    held = lifecycle.reserve(c.store, list(numbers_), account_, hours, now())
    if as_json:
        emit(held, True)
        return
    click.echo(f"Reserved {', '.join(n.number for n in held)} for account {account_} until {held[0].reserved_until}")


@number.command("release")
@click.argument("number_", metavar="NUMBER")
@click.option("--date", "on", metavar="YYYY-MM-DD",
              help="Release date: today (default) or up to 31 days back.")
@json_option
@pass_ctx
def number_release(c: Ctx, number_: str, on: str | None, as_json: bool) -> None:
    """Give a number back (no refund); it becomes available after the quarantine ([billing] quarantine_days)."""
    from vpbx.services import lifecycle

    result = lifecycle.release(c.store, c.cfg, number_, day(None), on=day(on) if on is not None else None)
    if result["warning"]:
        warn(result["warning"])
    if as_json:
        emit({"number": number_, **result}, True)
        return
    click.echo(f"Released {number_} from account {result['account']}; available again on {result['available_on']}")


@number.command("trial")
@click.argument("number_", metavar="NUMBER")
@click.option("--account", "account_", required=True)
@click.option("--hours", type=int, default=1, show_default=True)
@json_option
@pass_ctx
def number_trial(c: Ctx, number_: str, account_: str, hours: int, as_json: bool) -> None:
    """Lend an available number free for HOURS; calls are refused after that and the billing run frees it."""
    from vpbx.services import lifecycle

    n = lifecycle.trial(c.store, c.cfg, number_, account_, hours, now())
    if as_json:
        emit(n, True)
        return
    click.echo(f"Trial of {number_} for account {account_} until {n.trial_until}")


@number.command("activate")
@click.argument("number_", metavar="NUMBER")
@pass_ctx
def number_activate(c: Ctx, number_: str) -> None:
    """Documents checked: connect a pending_documents number and mail the account."""
    from vpbx.services import lifecycle

    n = lifecycle.activate(c.store, number_, day(None))
    flush_notices(c)
    click.echo(f"Number {number_} is {n.status} (account {n.account})")
