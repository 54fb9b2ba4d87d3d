"""vpbx.billing: the pure money rules of the number shop - amounts, periods, tariffs, order quotes, toll-free and
outbound rating, prepaid control.

Rule: pure. Nothing in this package does I/O or speaks SQL, Click or asyncio, and of vpbx it imports only
`vpbx.domain`; money is int minor units, never a float, and every division rounds half up to a minor unit. Callers
(services, CLI, billing run) read files, hold the clock and the database, and pass text, dates and records in. A test
walks the package's imports to keep it that way.

    money.py     parse_amount / format_amount / div_half_up
    periods.py   renewal_on / next_renewal / add_months / period_end / prorated / last_day_of_month / days_in_month
    tariff.py    Plan, Tariff, parse_tariff, area_code, connection_fee, monthly_fee, find_plan
    orders.py    OrderLine, Quote, quote, discount_percent, renewal_charge, next_period
    rating.py    PrefixTable, billable_units, call_cost, parse_rates_csv (PrefixMap and the CSV helpers, shared)
    outbound.py  OutboundRate, OutboundRateTable, billed_seconds, outbound_cost, affordable_seconds,
                 parse_outbound_rates_csv, parse_increment, format_increment, UNLIMITED_SECONDS
    prepaid.py   Payer, Wallet: the money of a paying account shared by its calls in progress (holds, quotas)
"""
from __future__ import annotations

from vpbx.billing.money import div_half_up, format_amount, parse_amount
from vpbx.billing.orders import (
    ORDER_MONTHS,
    POLICIES,
    OrderLine,
    Quote,
    discount_percent,
    next_period,
    quote,
    renewal_charge,
)
from vpbx.billing.outbound import (
    UNLIMITED_SECONDS,
    OutboundRate,
    OutboundRateTable,
    affordable_seconds,
    billed_seconds,
    format_increment,
    outbound_cost,
    parse_increment,
    parse_outbound_rates_csv,
)
from vpbx.billing.periods import (
    add_months,
    days_in_month,
    last_day_of_month,
    next_renewal,
    period_end,
    prorated,
    renewal_on,
)
from vpbx.billing.rating import PrefixTable, billable_units, call_cost, parse_rates_csv
from vpbx.billing.tariff import Plan, Tariff, area_code, connection_fee, find_plan, monthly_fee, parse_tariff

__all__ = [
    "ORDER_MONTHS", "POLICIES", "UNLIMITED_SECONDS", "OrderLine", "OutboundRate", "OutboundRateTable", "Plan",
    "PrefixTable", "Quote", "Tariff",
    "add_months", "affordable_seconds", "area_code", "billable_units", "billed_seconds", "call_cost",
    "connection_fee", "days_in_month", "discount_percent", "div_half_up", "find_plan", "format_amount",
    "format_increment", "last_day_of_month", "monthly_fee", "next_period", "next_renewal", "outbound_cost",
    "parse_amount", "parse_increment", "parse_outbound_rates_csv", "parse_rates_csv", "parse_tariff", "period_end",
    "prorated", "quote", "renewal_charge", "renewal_on",
]
