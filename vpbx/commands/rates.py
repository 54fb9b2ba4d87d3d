"""`vpbx rates ...`: per-minute rates of calls to toll-free numbers, by the caller's prefix.

Rule: a thin shell over vpbx.services.lifecycle (import_rates, rate_of).
"""
from __future__ import annotations

import click

from vpbx.commands.output import Ctx, emit, json_option, money, pass_ctx, read_text


@click.group()
def rates() -> None:
    """Per-minute rates charged to toll-free numbers' owners, by the caller's prefix (longest wins)."""


@rates.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def rates_import(c: Ctx, csv_file: str) -> None:
    """Replace the rate table with CSV_FILE (header prefix,price[,description]; price per minute, major units)."""
    from vpbx.services import lifecycle

    count = lifecycle.import_rates(c.store, read_text(csv_file, "rates", fix='save it as UTF-8 ("CSV UTF-8")'))
    click.echo(f"Imported {count} rate(s) from {csv_file}")


@rates.command("list")
@json_option
@pass_ctx
def rates_list(c: Ctx, as_json: bool) -> None:
    """List the rate table."""
    rows = [{"prefix": p, "price": price if as_json else money(c, price), "description": d}
            for p, price, d in c.store.rates.table()]
    emit(rows, as_json, ("prefix", "price", "description"), title="rates per minute")


@rates.command("lookup")
@click.argument("caller")
@pass_ctx
def rates_lookup(c: Ctx, caller: str) -> None:
    """Which rate a call from CALLER is charged at."""
    from vpbx.domain.errors import NotFoundError
    from vpbx.services import lifecycle

    hit = lifecycle.rate_of(c.store, caller)
    if hit is None:
        raise NotFoundError(f"no rate matches caller {caller}; add a prefix for it to the CSV and "
                            f"`vpbx rates import` it")
    click.echo(f"{caller}: prefix {hit[0]}, {money(c, hit[1])} per minute")
