"""`vpbx rates ...`: per-minute rates of calls to toll-free numbers, by the caller's prefix, and (`--outbound`) of
outbound calls, by the destination's prefix.

Rule: a thin shell over vpbx.services.lifecycle (import_rates, rate_of) and vpbx.services.charging
(import_outbound_rates, outbound_rate).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from vpbx.commands.output import Ctx, emit, json_option, money, pass_ctx, read_text

if TYPE_CHECKING:
    from vpbx.billing.outbound import OutboundRate

OUTBOUND_HELP = ("The outbound rate table (calls to external numbers, by the destination's prefix) instead of the "
                 "toll-free one.")
OUTBOUND_COLUMNS = ("prefix", "price", "increment", "connection", "description")


@click.group()
def rates() -> None:
    """Per-minute rates: of toll-free calls by the caller's prefix, of outbound calls by destination (--outbound).

    The longest matching prefix wins.
    """


@rates.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--outbound", is_flag=True, help=OUTBOUND_HELP + " Header prefix,price[,increment][,connection]"
                                               "[,description]; increment 60/60, 30/6, 1/1 (or N for N/N).")
@pass_ctx
def rates_import(c: Ctx, csv_file: str, outbound: bool) -> None:
    """Replace the rate table with CSV_FILE (header prefix,price[,description]; price per minute, major units)."""
    text = read_text(csv_file, "rates", fix='save it as UTF-8 ("CSV UTF-8")')
    if outbound:
        from vpbx.services import charging

        count = charging.import_outbound_rates(c.store, text)
        click.echo(f"Imported {count} outbound rate(s) from {csv_file}")
        return
    from vpbx.services import lifecycle

    count = lifecycle.import_rates(c.store, text)
    click.echo(f"Imported {count} rate(s) from {csv_file}")


def _outbound_view(c: Ctx, rate: OutboundRate, as_json: bool) -> dict[str, Any]:
    from vpbx.billing.outbound import format_increment

    return {"prefix": rate.prefix, "price": rate.price if as_json else money(c, rate.price),
            "increment": format_increment(rate.initial, rate.increment),
            "connection": rate.connection if as_json else money(c, rate.connection), "description": rate.description}


@rates.command("list")
@click.option("--outbound", is_flag=True, help=OUTBOUND_HELP)
@json_option
@pass_ctx
def rates_list(c: Ctx, outbound: bool, as_json: bool) -> None:
    """List the rate table (prices per minute)."""
    if outbound:
        emit([_outbound_view(c, r, as_json) for r in c.store.rates.outbound_table()], as_json, OUTBOUND_COLUMNS,
             title="outbound rates per minute")
        return
    rows = [{"prefix": p, "price": price if as_json else money(c, price), "description": d}
            for p, price, d in c.store.rates.table()]
    emit(rows, as_json, ("prefix", "price", "description"), title="rates per minute")


@rates.command("lookup")
@click.argument("number_", metavar="NUMBER")
@click.option("--outbound", is_flag=True, help="Which outbound rate a call to NUMBER is charged at (by default: "
                                               "which toll-free rate a call from NUMBER is charged at).")
@pass_ctx
def rates_lookup(c: Ctx, number_: str, outbound: bool) -> None:
    """Which rate a call from NUMBER (to a toll-free number) or, with --outbound, to NUMBER is charged at."""
    from vpbx.domain.errors import NotFoundError

    if outbound:
        from vpbx.billing.outbound import format_increment
        from vpbx.services import charging

        rate = charging.outbound_rate(c.store, number_)
        if rate is None:
            raise NotFoundError(f"no outbound rate matches {number_}; add a prefix for it to the CSV and "
                                f"`vpbx rates import --outbound` it")
        about = f" ({rate.description})" if rate.description else ""
        click.echo(f"{number_}: prefix {rate.prefix}{about}, {money(c, rate.price)} per minute, increment "
                   f"{format_increment(rate.initial, rate.increment)}, connection {money(c, rate.connection)}")
        return
    from vpbx.services import lifecycle

    hit = lifecycle.rate_of(c.store, number_)
    if hit is None:
        raise NotFoundError(f"no rate matches caller {number_}; add a prefix for it to the CSV and "
                            f"`vpbx rates import` it")
    click.echo(f"{number_}: prefix {hit[0]}, {money(c, hit[1])} per minute")
