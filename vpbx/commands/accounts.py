"""`vpbx account ...`: customers' accounts, their balance, ledger and statements.

Rule: a thin shell over vpbx.services.lifecycle. Amounts are typed in major units ("2 500", "12.50") and kept as int
minor units; tables show them formatted, `--json` gives the minor-unit integers with the currency.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import click

from vpbx.commands.output import Ctx, amount, day, emit, json_option, money, pass_ctx

LEDGER_COLUMNS = ("id", "effective_on", "kind", "amount", "balance_after", "number", "period_start", "period_end",
                  "ref")
DESTINATION_COLUMNS = ("prefix", "description", "calls", "minutes", "cost")


@click.group()
def account() -> None:
    """Customers' accounts: balance, ledger, statements."""


def _view(c: Ctx, acct: Any, as_json: bool) -> dict[str, Any]:
    data = {"name": acct.name, "email": acct.email, "org_id": acct.org_id,
            "balance": acct.balance if as_json else money(c, acct.balance)}
    if as_json:
        data["currency"] = c.cfg.billing.currency
    data["numbers"] = [n.number for n in c.store.numbers.held_by(acct.name)]
    data["record_calls"], data["record_prompt"] = acct.record_calls, acct.record_prompt
    return data


@account.command("add")
@click.argument("name")
@click.option("--email", required=True, help="Where notices (connection, waitlist) are sent.")
@click.option("--org-id", type=click.IntRange(1, 99999999), help="Extension a caller types on a shared number.")
@json_option
@pass_ctx
def account_add(c: Ctx, name: str, email: str, org_id: int | None, as_json: bool) -> None:
    """Add a customer's account (balance 0)."""
    from vpbx.services import lifecycle

    emit(_view(c, lifecycle.add_account(c.store, name, email, org_id), as_json), as_json)


@account.command("list")
@json_option
@pass_ctx
def account_list(c: Ctx, as_json: bool) -> None:
    """List accounts with their balances."""
    rows = [_view(c, a, as_json) for a in c.store.accounts.all()]
    emit(rows, as_json, ("name", "email", "org_id", "balance", "numbers"), title="accounts")


@account.command("show")
@click.argument("name")
@json_option
@pass_ctx
def account_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show one account."""
    emit(_view(c, c.store.accounts.get(name), as_json), as_json)


@account.command("set")
@click.argument("name")
@click.option("--email")
@click.option("--org-id", type=click.IntRange(1, 99999999))
@click.option("--record/--no-record", default=None,
              help="Record calls to and from the account's numbers (`vpbx recording`).")
@click.option("--record-prompt", metavar="PROMPT|none", help="Prompt announcing the recording before the call is "
                                                             "connected; none: no announcement.")
@json_option
@pass_ctx
def account_set(c: Ctx, name: str, email: str | None, org_id: int | None, record: bool | None,
                record_prompt: str | None, as_json: bool) -> None:
    """Change an account's e-mail, organisation ID or call recording."""
    from vpbx.services import lifecycle

    if email is None and org_id is None and record is None and record_prompt is None:
        raise click.UsageError("nothing to change; give --email, --org-id, --record/--no-record or --record-prompt")
    emit(_view(c, lifecycle.update_account(c.store, name, email=email, org_id=org_id, record_calls=record,
                                           record_prompt=record_prompt, cfg=c.cfg), as_json), as_json)


@account.command("remove")
@click.argument("name")
@pass_ctx
def account_remove(c: Ctx, name: str) -> None:
    """Close an account (refused while it holds numbers or a non-zero balance); its ledger is kept."""
    from vpbx.services import lifecycle

    lifecycle.close_account(c.store, name)
    click.echo(f"Removed account {name} (closed; its transactions are kept)")


def _post(c: Ctx, name: str, minor: int, ref: str, kind: str, as_json: bool) -> None:
    from vpbx.services import lifecycle

    result = lifecycle.topup(c.store, name, minor, ref, day(None), kind=kind)
    if as_json:
        emit({**result, "currency": c.cfg.billing.currency}, True)
        return
    click.echo(f"Account {name}: {'+' if minor > 0 else ''}{money(c, minor)}, balance {money(c, result['balance'])}")
    for key in ("suspended", "reactivated"):
        if result[key]:
            click.echo(f"{key.capitalize()}: {', '.join(result[key])}")


@account.command("topup")
@click.argument("name")
@click.argument("amount_", metavar="AMOUNT")
@click.option("--ref", default="", help="Payment reference (bank transfer ID, invoice).")
@json_option
@pass_ctx
def account_topup(c: Ctx, name: str, amount_: str, ref: str, as_json: bool) -> None:
    """Add AMOUNT (major units: 1500 or 99.90) to the balance; reactivates suspended numbers at >= 0."""
    _post(c, name, amount(amount_), ref, "topup", as_json)


@account.command("adjust")
@click.argument("name")
@click.argument("amount_", metavar="AMOUNT")
@click.option("--ref", required=True, help="Why (kept in the ledger).")
@json_option
@pass_ctx
def account_adjust(c: Ctx, name: str, amount_: str, ref: str, as_json: bool) -> None:
    """Correct the balance by AMOUNT (may be negative: -- -100 for a refund paid out)."""
    _post(c, name, amount(amount_, allow_negative=True), ref, "adjustment", as_json)


@account.command("transactions")
@click.argument("name")
@json_option
@pass_ctx
def account_transactions(c: Ctx, name: str, as_json: bool) -> None:
    """Every change of the account's balance, oldest first."""
    c.store.accounts.get(name, include_closed=True)
    rows = c.store.accounts.entries(name)
    if not as_json:
        rows = [{**r, "amount": money(c, r["amount"]), "balance_after": money(c, r["balance_after"])} for r in rows]
    emit(rows, as_json, LEDGER_COLUMNS, title=f"transactions of {name}")


@account.command("statement")
@click.argument("name")
@click.option("--month", help="YYYY-MM; default this month.")
@json_option
@pass_ctx
def account_statement(c: Ctx, name: str, month: str | None, as_json: bool) -> None:
    """Opening balance, charges, top-ups, calls and minutes, outbound calls by destination, closing balance for a
    month."""
    from vpbx.services import lifecycle

    data = lifecycle.statement(c.store, name, month or date.today().strftime("%Y-%m"))
    if as_json:
        emit({**data, "currency": c.cfg.billing.currency}, True)
        return
    amounts = ("opening_balance", "charges", "topups", "closing_balance", "call_cost", "outbound_cost")
    summary = {k: (money(c, v) if k in amounts else v)
               for k, v in data.items() if k not in ("entries", "charges_by_kind", "outbound_by_destination")}
    summary.update({f"  {kind}": money(c, v) for kind, v in data["charges_by_kind"].items()})
    emit(summary, False, title=f"statement {name} {data['month']}")
    if data["outbound_by_destination"]:
        emit([{**d, "cost": money(c, d["cost"])} for d in data["outbound_by_destination"]], False,
             DESTINATION_COLUMNS, title="outbound calls by destination")
    rows = [{**r, "amount": money(c, r["amount"]), "balance_after": money(c, r["balance_after"])}
            for r in data["entries"]]
    emit(rows, False, LEDGER_COLUMNS, title="entries")


@account.command("check")
@pass_ctx
def account_check(c: Ctx) -> None:
    """Prove every account's balance equals the sum of its ledger (exit 1 naming any that does not)."""
    from vpbx.services import lifecycle

    count = lifecycle.check_ledgers(c.store)
    click.echo(f"OK: {count} account(s), every balance equals its ledger")
