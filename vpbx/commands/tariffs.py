"""`vpbx tariff ...`: the price list.

Rule: a thin shell over vpbx.services.lifecycle (load_tariff, save_tariff).
"""
from __future__ import annotations

from typing import Any

import click

from vpbx.commands.output import Ctx, emit, json_option, money, pass_ctx, read_text


@click.group()
def tariff() -> None:
    """The price list: connection and monthly fees, plans, discounts (TOML)."""


@tariff.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def tariff_load(c: Ctx, file: str) -> None:
    """Check and load a tariff FILE (e.g. tariffs/seed-ru.toml); it replaces the current one."""
    from vpbx.services import lifecycle

    t = lifecycle.save_tariff(c.store, c.cfg, read_text(file, "tariff"))
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

    def m(v: int) -> str:
        return money(c, v)

    rows: list[dict[str, Any]] = [{"fee": "connection", "for": "default", "amount": m(t.connection_default)}]
    rows += [{"fee": "connection", "for": f"area {k}", "amount": m(v)} for k, v in sorted(t.connection_by_area.items())]
    rows += [{"fee": "connection", "for": f"type {k}", "amount": m(v)} for k, v in sorted(t.connection_by_type.items())]
    rows += [{"fee": "monthly", "for": f"{ty} {cat}", "amount": m(v)} for ty, cats in t.monthly.items()
             for cat, v in cats.items()]
    rows += [{"fee": "plan", "for": f"{p.key} ({p.name}; {', '.join(p.types)}; call credit {m(p.call_credit)})",
              "amount": m(p.monthly)} for p in t.plans.values()]
    rows += [{"fee": "discount", "for": f"prepay {k} months", "amount": f"{v}%"}
             for k, v in sorted(t.prepay_discounts.items())]
    rows.append({"fee": "discount", "for": f"{t.volume_min_numbers}+ numbers in one order",
                 "amount": f"{t.volume_percent}%"})
    emit(rows, False, ("fee", "for", "amount"), title=f"tariff ({t.currency})")
