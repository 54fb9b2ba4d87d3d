"""Issue 13, items 1 and 11: dates that move money are bounded, and the number lifecycle has no gaps.

1. One rule for every back-office date (`vpbx.services.lifecycle.effective_day`): the day a command counts from is
   the clock's day, or a day up to BACKDATE_DAYS (31) before it; never a future day (it gave paid months away: an
   order dated next year was paid until next year's period end for one month's fee) and never further back (an order
   dated 0001-01-01 made the next billing run post 24 310 renewals). Every command taking `--date` uses it (a test
   walks the command tree), refusals are one `Error:` line naming the date and the window, and change nothing.
11. A trial converts into a sale: the account trying a number may buy it (`number assign` was refused: "is trial").
    A plan's call credit is monthly: it is refilled on every renewal day, also inside a prepaid 3/6/12-month
    period (it was set once at the order), once per month however often the billing run runs, and never rolls over.
"""
from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from test_lifecycle import MOSCOW, RATES_CSV, SEED, SPB, TOLLFREE, D, World, _call, at

from clitools import dump, ok
from vpbx.cli import main
from vpbx.domain.errors import ConflictError, ValidationError
from vpbx.services import lifecycle

ROOT = Path(__file__).resolve().parent.parent
CLEAN_ENV = {"VPBX_CONFIG": None, "VPBX_DB": None, "COLUMNS": "250"}
TODAY = date(2026, 11, 20)          # the CLI's clock in these tests (vpbx.commands.output.today)
WINDOW = lifecycle.BACKDATE_DAYS


# ---- 1. the rule ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("on", "expected"), [
    (None, TODAY),
    (TODAY, TODAY),
    (TODAY - timedelta(days=1), TODAY - timedelta(days=1)),
    (TODAY - timedelta(days=WINDOW), TODAY - timedelta(days=WINDOW)),
])
def test_a_back_office_date_is_today_or_up_to_31_days_back(on: date | None, expected: date) -> None:
    assert WINDOW == 31
    assert lifecycle.effective_day(on, TODAY, "order date") == expected


@pytest.mark.parametrize(("on", "needle"), [
    (TODAY + timedelta(days=1), "order date 2026-11-21 is in the future (today is 2026-11-20)"),
    (date(2027, 11, 1), "order date 2027-11-01 is in the future"),
    (date(9999, 12, 31), "order date 9999-12-31 is in the future"),
    (TODAY - timedelta(days=WINDOW + 1), "order date 2026-10-19 is more than 31 days back (today is 2026-11-20)"),
    (date(1, 1, 1), "order date 0001-01-01 is more than 31 days back"),
])
def test_a_date_outside_the_window_is_refused_naming_it_and_the_window(on: date, needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        lifecycle.effective_day(on, TODAY, "order date")
    assert needle in str(exc.value)
    assert "2026-10-20 .. 2026-11-20" in str(exc.value) or "from 2026-10-20 to 2026-11-20" in str(exc.value)


# ---- 1. the services: assign, release, billing run --------------------------------------------------------------
def _sql(w: World) -> str:
    return "\n".join(sqlite3.connect(w.db).iterdump())


@pytest.fixture
def w(tmp_path: Path):
    world = World(tmp_path)
    yield world
    world.close()


@pytest.mark.parametrize("on", [date(1, 1, 1), TODAY - timedelta(days=32), TODAY + timedelta(days=1),
                                date(9999, 12, 31)])
def test_services_refuse_a_date_outside_the_window_and_change_nothing(w: World, on: date) -> None:
    w.account(funds=10_000_000, on="2026-11-01")
    w.number(MOSCOW)
    w.assign(SPB, "2026-11-01")
    before = _sql(w)
    with pytest.raises(ValidationError, match="order date"):
        lifecycle.assign(w.store, w.cfg, [MOSCOW], "acme", TODAY, end_user="Ivan Petrov", on=on)
    with pytest.raises(ValidationError, match="release date"):
        lifecycle.release(w.store, w.cfg, SPB, TODAY, on=on)
    with pytest.raises(ValidationError, match="billing date"):
        lifecycle.billing_run(w.store, w.cfg, TODAY, at(TODAY), on=on)
    assert _sql(w) == before                 # nothing posted, no number changed, no billing run recorded


def test_a_back_dated_order_counts_from_its_day_and_the_run_catches_up_once(w: World) -> None:
    w.account(funds=10_000_000, on="2026-10-01")
    w.number(MOSCOW)
    on = TODAY - timedelta(days=WINDOW)                                     # 2026-10-20, anniversary policy
    lifecycle.assign(w.store, w.cfg, [MOSCOW], "acme", TODAY, end_user="Ivan Petrov", on=on)
    n = w.n(MOSCOW)
    assert (n.connected_on, n.paid_until, n.anchor_day) == ("2026-10-20", "2026-11-19", 20)
    assert {r["effective_on"] for r in w.ledger() if r["kind"] in ("connection", "period")} == {"2026-10-20"}
    summary = lifecycle.billing_run(w.store, w.cfg, TODAY, at(TODAY))
    assert [(r["number"], r["period_start"]) for r in summary["renewed"]] == [(MOSCOW, "2026-11-20")]


def test_a_billing_run_may_catch_up_a_missed_day_but_not_run_ahead(w: World) -> None:
    w.account(funds=10_000_000, on="2026-11-01")
    w.assign(MOSCOW, "2026-10-25")                                          # renews on 2026-11-25
    assert lifecycle.billing_run(w.store, w.cfg, TODAY, at(TODAY), on=TODAY - timedelta(days=3))["date"] == \
        "2026-11-17"
    with pytest.raises(ValidationError, match="billing date 2026-11-25 is in the future"):
        lifecycle.billing_run(w.store, w.cfg, TODAY, at(TODAY), on=date(2026, 11, 25))
    assert w.n(MOSCOW).paid_until == "2026-11-24"                           # not renewed ahead of time


# ---- 1. the command line: every --date ---------------------------------------------------------------------------
def _date_commands() -> dict[str, click.Option]:
    """Every command of the tree with a `--date` option (lazily loaded groups included)."""
    found: dict[str, click.Option] = {}

    def walk(cmd: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    walk(sub, (*path, name))
            return
        for param in cmd.params:
            if isinstance(param, click.Option) and "--date" in param.opts:
                found[" ".join(path)] = param

    walk(main, ())
    return found


DATE_COMMANDS = {
    "number assign": ("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--date"),
    "number release": ("number", "release", SPB, "--date"),
    "billing run": ("billing", "run", "--date"),
}


def test_every_date_option_is_bounded_by_the_one_rule_and_says_so() -> None:
    options = _date_commands()
    assert set(options) == set(DATE_COMMANDS), "a new --date option: add it to DATE_COMMANDS and use effective_day"
    for name, option in options.items():
        assert option.help and f"up to {WINDOW} days back" in option.help, (name, option.help)


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.cfg, self.db = tmp / "vpbx.toml", tmp / "vpbx.db"
        ok(self.run("init", "--dir", tmp))

    def run(self, *args: Any) -> Result:
        return CliRunner().invoke(main, ["--config", str(self.cfg), *map(str, args)], env=CLEAN_ENV)

    def ok(self, *args: Any) -> Result:
        return ok(self.run(*args))

    def fails(self, *args: Any) -> str:
        before = dump(self.db)
        result = self.run(*args)
        assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
        assert isinstance(result.exception, SystemExit), result.exception
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and result.stdout == "", result.stderr
        assert dump(self.db) == before, "a refused command changed the database"
        return lines[0]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    from vpbx.commands import output

    monkeypatch.setattr(output, "today", lambda: TODAY)
    c = Cli(tmp_path)
    c.ok("tariff", "load", ROOT / "tariffs" / "seed-ru.toml")
    c.ok("account", "add", "acme", "--email", "acme@example.com")
    c.ok("account", "topup", "acme", "100000")
    for n in (MOSCOW, SPB):
        c.ok("number", "add", n)
    c.ok("number", "assign", SPB, "--account", "acme", "--end-user", "Ivan Petrov")
    return c


@pytest.mark.parametrize("command", sorted(DATE_COMMANDS))
@pytest.mark.parametrize(("value", "needle"), [
    ("0001-01-01", "0001-01-01 is more than 31 days back (today is 2026-11-20)"),
    ("2026-10-19", "2026-10-19 is more than 31 days back"),
    ("2026-11-21", "2026-11-21 is in the future (today is 2026-11-20)"),
    ("2027-11-01", "2027-11-01 is in the future"),
    ("9999-12-31", "9999-12-31 is in the future"),
])
def test_cli_refuses_a_date_outside_the_window_with_one_error_line(cli: Cli, command: str, value: str,
                                                                   needle: str) -> None:
    line = cli.fails(*DATE_COMMANDS[command], value)
    assert needle in line and "2026-10-20" in line, line


@pytest.mark.parametrize("command", sorted(DATE_COMMANDS))
def test_cli_accepts_the_edges_of_the_window(cli: Cli, command: str) -> None:
    cli.ok(*DATE_COMMANDS[command], "2026-10-20")


def test_cli_billing_run_at_year_one_is_not_recorded(cli: Cli) -> None:
    cli.fails("billing", "run", "--date", "0001-01-01")
    con = sqlite3.connect(cli.db)
    try:
        assert con.execute("SELECT count(*) FROM billing_runs WHERE run_date < '2026'").fetchone() == (0,)
    finally:
        con.close()


# ---- 11. a trial converts into a sale -----------------------------------------------------------------------------
def test_the_account_trying_a_number_may_buy_it(w: World) -> None:
    w.account(funds=1_000_000)
    w.number(MOSCOW)
    lifecycle.trial(w.store, w.cfg, MOSCOW, "acme", 1, at(D("2026-03-10"), 10))
    w.assign(MOSCOW, "2026-03-10")
    n = w.n(MOSCOW)
    assert (n.status, n.account, n.trial_until, n.connected_on) == ("active", "acme", None, "2026-03-10")
    assert [r["kind"] for r in w.ledger()] == ["topup", "connection", "period"]
    assert w.run("2026-03-10", now=at(D("2026-03-10"), 12))["trials_ended"] == []      # the sale is not freed
    assert w.n(MOSCOW).status == "active"


def test_an_ended_trial_not_yet_freed_may_still_be_bought_by_its_account(w: World) -> None:
    w.account(funds=1_000_000)
    w.number(MOSCOW)
    lifecycle.trial(w.store, w.cfg, MOSCOW, "acme", 1, at(D("2026-03-10"), 10))       # ended at 11:00, no run yet
    w.assign(MOSCOW, "2026-03-11")
    assert w.n(MOSCOW).status == "active"


def test_another_accounts_trial_stays_refused(w: World) -> None:
    w.account(funds=1_000_000)
    w.account("other")
    w.number(MOSCOW)
    lifecycle.trial(w.store, w.cfg, MOSCOW, "other", 1, at(D("2026-03-10"), 10))
    before = w.snapshot()
    with pytest.raises(ConflictError, match=rf"number \{MOSCOW} is trial \(account other\)"):
        w.assign(MOSCOW, "2026-03-10")
    assert w.snapshot() == before


def test_cli_trial_then_assign_by_the_same_account(cli: Cli) -> None:
    cli.ok("number", "trial", MOSCOW, "--account", "acme")
    cli.ok("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov")
    result = cli.ok("number", "show", MOSCOW, "--json")
    assert '"status": "active"' in result.stdout and '"trial_until": null' in result.stdout


# ---- 11. a plan's call credit is monthly --------------------------------------------------------------------------
@pytest.fixture
def credit(tmp_path: Path):
    """A toll-free number on a plan with 10.00 (1000) of monthly call credit, prepaid 3 months from 2026-03-10."""
    world = World(tmp_path)
    text = SEED.replace('monthly = "1 500"\ncall_credit = 0', 'monthly = "1 500"\ncall_credit = 10')
    assert text != SEED
    lifecycle.save_tariff(world.store, world.cfg, text)
    lifecycle.import_rates(world.store, RATES_CSV)
    world.account(funds=1_000_000)
    world.assign(TOLLFREE, "2026-03-10", plan="standart", months=3)
    yield world
    world.close()


def _use(w: World, call_id: str, day: str) -> None:
    assert lifecycle.charge_call(w.store, w.cfg, _call(w, call_id, TOLLFREE, "+78432123456", 61, day=day)) == 700


def test_plan_credit_is_refilled_every_month_of_a_prepaid_period(credit: World) -> None:
    w = credit
    n = w.n(TOLLFREE)
    assert (n.paid_until, n.call_credit, n.credit_renews_on) == ("2026-06-09", 1000, "2026-04-10")
    _use(w, "c1", "2026-03-15")
    assert w.n(TOLLFREE).call_credit == 300
    assert w.run("2026-04-09")["credit_refilled"] == [] and w.n(TOLLFREE).call_credit == 300
    summary = w.run("2026-04-10")                                   # a month into the prepaid quarter: no renewal
    assert summary["renewed"] == [] and summary["credit_refilled"] == [TOLLFREE]
    assert (w.n(TOLLFREE).call_credit, w.n(TOLLFREE).credit_renews_on) == (1000, "2026-05-10")   # no roll-over
    _use(w, "c2", "2026-04-11")
    assert w.run("2026-04-10")["credit_refilled"] == [] and w.run("2026-04-20")["credit_refilled"] == []
    assert w.n(TOLLFREE).call_credit == 300                         # once a month, however often the run runs
    assert w.run("2026-05-12")["credit_refilled"] == [TOLLFREE]     # the run of the 10th was missed: caught up
    assert (w.n(TOLLFREE).call_credit, w.n(TOLLFREE).credit_renews_on) == (1000, "2026-06-10")
    _use(w, "c3", "2026-05-20")
    summary = w.run("2026-06-10")                                   # the prepaid quarter ends: renewal + refill
    assert [r["period_start"] for r in summary["renewed"]] == ["2026-06-10"]
    assert summary["credit_refilled"] == [TOLLFREE] and w.n(TOLLFREE).call_credit == 1000


def test_a_released_number_forgets_its_credit_month(credit: World) -> None:
    lifecycle.release(credit.store, credit.cfg, TOLLFREE, D("2026-03-20"))
    n = credit.n(TOLLFREE)
    assert (n.call_credit, n.credit_renews_on, n.plan) == (0, None, None)
    assert credit.run("2026-04-10")["credit_refilled"] == []
