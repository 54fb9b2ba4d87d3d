"""`vpbx` commands for customers' accounts and money: accounts, tariffs, number orders and lifecycle, the billing run,
toll-free rates, documents, the waitlist, notices and statistics.

Rules: the same thin shell as `vpbx.cli` (registered on its groups): parse options, call one `vpbx.lifecycle` or
store function, print. Amounts are typed in major units ("2 500", "12.50") and kept as int minor units; tables show
them formatted, `--json` gives the minor-unit integers with the currency.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import click

from vpbx.cli import Ctx, emit, json_option, main, number, pass_ctx


def _today(value: str | None) -> date:
    from vpbx.domain.errors import ValidationError

    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"date {value!r} is not YYYY-MM-DD; e.g. --date 2026-11-22") from None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _money(c: Ctx, minor: int) -> str:
    from vpbx.billing import format_amount

    return format_amount(minor, c.cfg.billing.currency)


def _amount(text: str, allow_negative: bool = False) -> int:
    from vpbx.billing import parse_amount

    return parse_amount(text, allow_negative=allow_negative)


def _flush(c: Ctx) -> None:
    from vpbx.services import lifecycle

    result = lifecycle.flush_mail(c.store, c.cfg)
    if result["failed"]:
        click.echo(f"Warning: {result['failed']} e-mail notice(s) not sent yet (kept; see `vpbx notices list`)", err=True)


# ---- accounts -------------------------------------------------------------------------------------------------
@main.group()
def account() -> None:
    """Customers' accounts: balance, ledger, statements."""


def _account_view(c: Ctx, acct: Any, as_json: bool) -> dict[str, Any]:
    data = {"name": acct.name, "email": acct.email, "org_id": acct.org_id,
            "balance": acct.balance if as_json else _money(c, acct.balance)}
    if as_json:
        data["currency"] = c.cfg.billing.currency
    data["numbers"] = [n.number for n in c.store.numbers.held_by(acct.name)]
    return data


@account.command("add")
@click.argument("name")
@click.option("--email", required=True, help="Where notices (connection, waitlist) are sent.")
@click.option("--org-id", type=click.IntRange(1, 99999999), help="Extension a caller types on a shared number.")
@json_option
@pass_ctx
def account_add(c: Ctx, name: str, email: str, org_id: int | None, as_json: bool) -> None:
    """Add a customer's account (balance 0)."""
    from vpbx.domain import validation as validate
    from vpbx.domain.records import Account

    with validate.about(f"account {name}"):
        record = Account(validate.name(name, "account"), validate.email(email), org_id)
    emit(_account_view(c, c.store.accounts.add(record), as_json), as_json)


@account.command("list")
@json_option
@pass_ctx
def account_list(c: Ctx, as_json: bool) -> None:
    """List accounts with their balances."""
    rows = [_account_view(c, a, as_json) for a in c.store.accounts.all()]
    emit(rows, as_json, ("name", "email", "org_id", "balance", "numbers"), title="accounts")


@account.command("show")
@click.argument("name")
@json_option
@pass_ctx
def account_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show one account."""
    emit(_account_view(c, c.store.accounts.get(name), as_json), as_json)


@account.command("set")
@click.argument("name")
@click.option("--email")
@click.option("--org-id", type=click.IntRange(1, 99999999))
@json_option
@pass_ctx
def account_set(c: Ctx, name: str, email: str | None, org_id: int | None, as_json: bool) -> None:
    """Change an account's e-mail or organisation ID."""
    from vpbx.domain import validation as validate

    changes: dict[str, Any] = {}
    with validate.about(f"account {name}"):
        if email is not None:
            changes["email"] = validate.email(email)
        if org_id is not None:
            changes["org_id"] = org_id
    if not changes:
        raise click.UsageError("nothing to change; give --email or --org-id")
    emit(_account_view(c, c.store.accounts.update(name, **changes), as_json), as_json)


@account.command("remove")
@click.argument("name")
@pass_ctx
def account_remove(c: Ctx, name: str) -> None:
    """Close an account (refused while it holds numbers or a non-zero balance); its ledger is kept."""
    c.store.accounts.close(name)
    click.echo(f"Removed account {name} (closed; its transactions are kept)")


def _post(c: Ctx, name: str, amount: int, ref: str, kind: str, as_json: bool) -> None:
    from vpbx.services import lifecycle
    from vpbx.domain import validation as validate

    with validate.about(f"account {name}"):
        ref = validate.config_text("ref", ref, obj=f"account {name}")
    result = lifecycle.topup(c.store, name, amount, ref, _today(None), kind=kind)
    if as_json:
        emit({**result, "currency": c.cfg.billing.currency}, True)
        return
    click.echo(f"Account {name}: {'+' if amount > 0 else ''}{_money(c, amount)}, balance {_money(c, result['balance'])}")
    for key in ("suspended", "reactivated"):
        if result[key]:
            click.echo(f"{key.capitalize()}: {', '.join(result[key])}")


@account.command("topup")
@click.argument("name")
@click.argument("amount")
@click.option("--ref", default="", help="Payment reference (bank transfer ID, invoice).")
@json_option
@pass_ctx
def account_topup(c: Ctx, name: str, amount: str, ref: str, as_json: bool) -> None:
    """Add AMOUNT (major units, e.g. 1500 or 99.90) to the balance; reactivates suspended numbers at >= 0."""
    _post(c, name, _amount(amount), ref, "topup", as_json)


@account.command("adjust")
@click.argument("name")
@click.argument("amount")
@click.option("--ref", required=True, help="Why (kept in the ledger).")
@json_option
@pass_ctx
def account_adjust(c: Ctx, name: str, amount: str, ref: str, as_json: bool) -> None:
    """Correct the balance by AMOUNT (may be negative, e.g. -- -100 for a refund paid out)."""
    _post(c, name, _amount(amount, allow_negative=True), ref, "adjustment", as_json)


LEDGER_COLUMNS = ("id", "effective_on", "kind", "amount", "balance_after", "number", "period_start", "period_end", "ref")


@account.command("transactions")
@click.argument("name")
@json_option
@pass_ctx
def account_transactions(c: Ctx, name: str, as_json: bool) -> None:
    """Every change of the account's balance, oldest first."""
    c.store.accounts.get(name, include_closed=True)
    rows = c.store.accounts.entries(name)
    if not as_json:
        rows = [{**r, "amount": _money(c, r["amount"]), "balance_after": _money(c, r["balance_after"])} for r in rows]
    emit(rows, as_json, LEDGER_COLUMNS, title=f"transactions of {name}")


@account.command("statement")
@click.argument("name")
@click.option("--month", help="YYYY-MM; default this month.")
@json_option
@pass_ctx
def account_statement(c: Ctx, name: str, month: str | None, as_json: bool) -> None:
    """Opening balance, charges, top-ups, calls and minutes, closing balance for a month."""
    from vpbx.services import lifecycle

    data = lifecycle.statement(c.store, name, month or date.today().strftime("%Y-%m"))
    if as_json:
        emit({**data, "currency": c.cfg.billing.currency}, True)
        return
    summary = {k: (_money(c, v) if k in ("opening_balance", "charges", "topups", "closing_balance", "call_cost") else v)
               for k, v in data.items() if k not in ("entries", "charges_by_kind")}
    summary.update({f"  {kind}": _money(c, v) for kind, v in data["charges_by_kind"].items()})
    emit(summary, False, title=f"statement {name} {data['month']}")
    rows = [{**r, "amount": _money(c, r["amount"]), "balance_after": _money(c, r["balance_after"])} for r in data["entries"]]
    emit(rows, False, LEDGER_COLUMNS, title="entries")


@account.command("check")
@pass_ctx
def account_check(c: Ctx) -> None:
    """Prove every account's balance equals the sum of its ledger (exit 1 naming any that does not)."""
    from vpbx.domain.errors import ConflictError

    bad = c.store.accounts.mismatches()
    if bad:
        raise ConflictError("ledger does not add up for " + ", ".join(
            f"account {b['account']} (balance {b['balance']}, ledger {b['ledger_sum']})" for b in bad)
            + "; restore the database from a backup and report a bug")
    click.echo(f"OK: {len(c.store.accounts.all())} account(s), every balance equals its ledger")


# ---- tariffs and rates ----------------------------------------------------------------------------------------
@main.group()
def tariff() -> None:
    """The price list: connection and monthly fees, plans, discounts (TOML)."""


@tariff.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def tariff_load(c: Ctx, file: str) -> None:
    """Check and load a tariff FILE (e.g. tariffs/seed-ru.toml); it replaces the current one."""
    from vpbx.services import lifecycle
    from vpbx.domain.errors import ValidationError

    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"tariff {file} is not UTF-8 text; save it as UTF-8") from None
    t = lifecycle.save_tariff(c.store, c.cfg, text)
    click.echo(f"Loaded tariff {file}: {len(t.monthly)} number type(s), {len(t.plans)} plan(s), currency {t.currency}")


@tariff.command("show")
@click.option("--source", is_flag=True, help="Print the TOML as loaded.")
@json_option
@pass_ctx
def tariff_show(c: Ctx, source: bool, as_json: bool) -> None:
    """Show the loaded tariff."""
    from dataclasses import asdict

    from vpbx.services import lifecycle

    t = lifecycle.load_tariff(c.store, c.cfg)
    if source:
        click.echo(t.source, nl=False)
        return
    data = {k: v for k, v in asdict(t).items() if k != "source"}
    if as_json:
        emit(data, True)
        return
    m = lambda v: _money(c, v)  # noqa: E731
    rows = [{"fee": "connection", "for": "default", "amount": m(t.connection_default)}]
    rows += [{"fee": "connection", "for": f"area {k}", "amount": m(v)} for k, v in sorted(t.connection_by_area.items())]
    rows += [{"fee": "connection", "for": f"type {k}", "amount": m(v)} for k, v in sorted(t.connection_by_type.items())]
    rows += [{"fee": "monthly", "for": f"{ty} {cat}", "amount": m(v)} for ty, cats in t.monthly.items() for cat, v in cats.items()]
    rows += [{"fee": "plan", "for": f"{p.key} ({p.name}; {', '.join(p.types)}; call credit {m(p.call_credit)})",
              "amount": m(p.monthly)} for p in t.plans.values()]
    rows += [{"fee": "discount", "for": f"prepay {k} months", "amount": f"{v}%"} for k, v in sorted(t.prepay_discounts.items())]
    rows.append({"fee": "discount", "for": f"{t.volume_min_numbers}+ numbers in one order", "amount": f"{t.volume_percent}%"})
    emit(rows, False, ("fee", "for", "amount"), title=f"tariff ({t.currency})")


@main.group()
def rates() -> None:
    """Per-minute rates charged to toll-free numbers' owners, by the caller's prefix (longest wins)."""


@rates.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def rates_import(c: Ctx, csv_file: str) -> None:
    """Replace the rate table with CSV_FILE (header prefix,price[,description]; price per minute, major units)."""
    from vpbx.services import lifecycle
    from vpbx.domain.errors import ValidationError

    try:
        text = Path(csv_file).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"rates {csv_file} is not UTF-8 text; save it as UTF-8 (\"CSV UTF-8\")") from None
    count = lifecycle.import_rates(c.store, text)
    click.echo(f"Imported {count} rate(s) from {csv_file}")


@rates.command("list")
@json_option
@pass_ctx
def rates_list(c: Ctx, as_json: bool) -> None:
    """List the rate table."""
    rows = [{"prefix": p, "price": price if as_json else _money(c, price), "description": d} for p, price, d in c.store.rates.table()]
    emit(rows, as_json, ("prefix", "price", "description"), title="rates per minute")


@rates.command("lookup")
@click.argument("caller")
@pass_ctx
def rates_lookup(c: Ctx, caller: str) -> None:
    """Which rate a call from CALLER is charged at."""
    from vpbx.services import lifecycle
    from vpbx.domain.errors import NotFoundError

    hit = lifecycle.rate_of(c.store, caller)
    if hit is None:
        raise NotFoundError(f"no rate matches caller {caller}; add a prefix for it to the CSV and `vpbx rates import` it")
    click.echo(f"{caller}: prefix {hit[0]}, {_money(c, hit[1])} per minute")


# ---- number lifecycle -----------------------------------------------------------------------------------------
@number.command("assign")
@click.argument("numbers_", nargs=-1, required=True)
@click.option("--account", "account_", required=True)
@click.option("--end-user", help="Full name of the person responsible for the number.")
@click.option("--m2m", help="ID of the M2M device the number is for (instead of --end-user).")
@click.option("--months", type=click.Choice(["1", "3", "6", "12"]), default="1", show_default=True,
              help="Prepaid months (3, 6, 12 are discounted).")
@click.option("--plan", help="A plan of the tariff (see `vpbx tariff show`) instead of the fee by type and category.")
@click.option("--date", "on", help="Order date YYYY-MM-DD (default today).")
@json_option
@pass_ctx
def number_assign(c: Ctx, numbers_: tuple[str, ...], account_: str, end_user: str | None, m2m: str | None, months: str,
                  plan: str | None, on: str | None, as_json: bool) -> None:
    """Sell NUMBER(s) to an account: connection fee + first period in one transaction (refused if funds are short)."""
    from dataclasses import asdict

    from vpbx.services import lifecycle

    q = lifecycle.assign(c.store, c.cfg, list(numbers_), account_, _today(on), end_user=end_user, m2m=m2m,
                         months=int(months), plan=plan)
    _flush(c)
    if as_json:
        emit({"lines": [asdict(line) for line in q.lines], "total": q.total, "discount_percent": q.discount_percent,
              "currency": c.cfg.billing.currency, "balance": c.store.accounts.get(account_).balance}, True)
        return
    rows = [{"number": line.number, "connection": _money(c, line.connection_fee), "period": _money(c, line.period_fee),
             "discount": _money(c, line.discount), "total": _money(c, line.total), "paid_until": line.paid_until,
             "status": c.store.numbers.get(line.number).status} for line in q.lines]
    emit(rows, False, title=f"order for {account_}")
    click.echo(f"Charged {_money(c, q.total)}; balance {_money(c, c.store.accounts.get(account_).balance)}")


@number.command("reserve")
@click.argument("numbers_", nargs=-1, required=True)
@click.option("--account", "account_", required=True)
@click.option("--hours", type=int, default=24, show_default=True)
@pass_ctx
def number_reserve(c: Ctx, numbers_: tuple[str, ...], account_: str, hours: int) -> None:
    """Hold available NUMBER(s) for an account (free) until it orders them with `number assign`."""
    from vpbx.services import lifecycle

    held = lifecycle.reserve(c.store, list(numbers_), account_, hours, _now())
    click.echo(f"Reserved {', '.join(n.number for n in held)} for account {account_} until {held[0].reserved_until}")


@number.command("release")
@click.argument("number_")
@click.option("--date", "on", help="Release date YYYY-MM-DD (default today).")
@pass_ctx
def number_release(c: Ctx, number_: str, on: str | None) -> None:
    """Give a number back (no refund); it becomes available after the quarantine ([billing] quarantine_days)."""
    from vpbx.services import lifecycle

    result = lifecycle.release(c.store, c.cfg, number_, _today(on))
    if result["warning"]:
        click.echo(f"Warning: {result['warning']}", err=True)
    click.echo(f"Released {number_} from account {result['account']}; available again on {result['available_on']}")


@number.command("trial")
@click.argument("number_")
@click.option("--account", "account_", required=True)
@click.option("--hours", type=int, default=1, show_default=True)
@pass_ctx
def number_trial(c: Ctx, number_: str, account_: str, hours: int) -> None:
    """Lend an available number free for HOURS; calls are refused after that and the billing run frees it."""
    from vpbx.services import lifecycle

    n = lifecycle.trial(c.store, c.cfg, number_, account_, hours, _now())
    click.echo(f"Trial of {number_} for account {account_} until {n.trial_until}")


@number.command("activate")
@click.argument("number_")
@pass_ctx
def number_activate(c: Ctx, number_: str) -> None:
    """Documents checked: connect a pending_documents number and mail the account."""
    from vpbx.services import lifecycle

    n = lifecycle.activate(c.store, number_, _today(None))
    _flush(c)
    click.echo(f"Number {number_} is {n.status} (account {n.account})")


@main.group()
def document() -> None:
    """End users' documents for numbers that need them."""


@document.command("add")
@click.argument("number_")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
@pass_ctx
def document_add(c: Ctx, number_: str, file: str, as_json: bool) -> None:
    """Store FILE (a scan, PDF) for NUMBER; kept owner-only beside the database."""
    from vpbx.services import lifecycle

    emit(lifecycle.add_document(c.store, c.cfg, number_, Path(file)), as_json)


@document.command("list")
@click.argument("number_", required=False)
@json_option
@pass_ctx
def document_list(c: Ctx, number_: str | None, as_json: bool) -> None:
    """List stored documents (of one NUMBER)."""
    emit(c.store.shop.list_documents(number_), as_json, ("id", "number", "account", "filename", "size", "added_at"),
         title="documents")


# ---- billing run, waitlist, notices, stats --------------------------------------------------------------------
@main.group()
def billing() -> None:
    """The daily renewal job."""


@billing.command("run")
@click.option("--date", "on", help="The day to bill (YYYY-MM-DD, default today).")
@json_option
@pass_ctx
def billing_run(c: Ctx, on: str | None, as_json: bool) -> None:
    """Renew numbers due by DATE, suspend accounts in debt, end expired trials, end quarantines; run it daily
    (cron or a systemd timer). Running it twice for a day charges once."""
    from vpbx.services import lifecycle

    summary = lifecycle.billing_run(c.store, c.cfg, _today(on), _now())
    summary["mail"] = lifecycle.flush_mail(c.store, c.cfg)
    if as_json:
        emit(summary, True)
        return
    click.echo(f"Billing run {summary['date']}: {len(summary['renewed'])} renewal(s), {_money(c, summary['charged'])}")
    for key in ("suspended", "trials_ended", "reservations_lapsed", "available_again"):
        if summary[key]:
            click.echo(f"{key.replace('_', ' ').capitalize()}: {', '.join(summary[key])}")


@main.group()
def waitlist() -> None:
    """Accounts waiting for a kind of number: mailed once when a match is added."""


@waitlist.command("add")
@click.option("--account", "account_", required=True)
@click.option("--country", required=True, help="ISO country code, e.g. UA.")
@click.option("--city", default="")
@click.option("--type", "type_", type=click.Choice(["geographic", "mobile", "tollfree", "other"]))
@json_option
@pass_ctx
def waitlist_add(c: Ctx, account_: str, country: str, city: str, type_: str | None, as_json: bool) -> None:
    """Wait for a number of COUNTRY (and city, type)."""
    from vpbx.domain import validation as validate
    from vpbx.domain.errors import ValidationError

    country = country.upper()
    if len(country) != 2 or not country.isalpha():
        raise ValidationError(f"waitlist: country {country!r} is not an ISO 3166 code; give e.g. --country UA")
    with validate.about("waitlist"):
        city = validate.config_text("city", city.strip(), obj="waitlist")
    emit(c.store.shop.add_waitlist(account_, country, city, type_ or ""), as_json)


@waitlist.command("list")
@json_option
@pass_ctx
def waitlist_list(c: Ctx, as_json: bool) -> None:
    """List waitlist entries (notified ones show the number they were told of)."""
    emit(c.store.shop.list_waitlist(), as_json, ("id", "account", "country", "city", "type", "created_at", "notified_at",
                                            "notified_number"), title="waitlist")


@waitlist.command("remove")
@click.argument("entry_id", type=int)
@pass_ctx
def waitlist_remove(c: Ctx, entry_id: int) -> None:
    """Remove a waitlist entry."""
    c.store.shop.remove_waitlist(entry_id)
    click.echo(f"Removed waitlist entry {entry_id}")


@main.group()
def notices() -> None:
    """E-mail notices to accounts (connection, waitlist): kept until sent."""


@notices.command("list")
@click.option("--unsent", is_flag=True)
@json_option
@pass_ctx
def notices_list(c: Ctx, unsent: bool, as_json: bool) -> None:
    """List notices and whether they were sent."""
    emit(c.store.outbox.list_mail(unsent_only=unsent), as_json, ("id", "recipient", "subject", "created_at", "sent_at",
                                                          "attempts", "last_error"), title="notices")


@notices.command("send")
@pass_ctx
def notices_send(c: Ctx) -> None:
    """Try to send every unsent notice now."""
    from vpbx.services import lifecycle

    result = lifecycle.flush_mail(c.store, c.cfg)
    click.echo(f"{result['sent']} sent, {result['failed']} still waiting")


@main.command()
@json_option
@pass_ctx
def stats(c: Ctx, as_json: bool) -> None:
    """Numbers by status, revenue by month, calls by number."""
    data = {"numbers_by_status": c.store.numbers.status_counts(), "revenue_by_month": c.store.accounts.revenue_by_month(),
            "calls_by_number": c.store.calls.stats()}
    if as_json:
        emit({**data, "currency": c.cfg.billing.currency}, True)
        return
    emit(data["numbers_by_status"], False, title="numbers by status")
    emit([{**r, "revenue": _money(c, r["revenue"])} for r in data["revenue_by_month"]], False, title="revenue by month")
    emit(data["calls_by_number"], False, title="calls by number")
