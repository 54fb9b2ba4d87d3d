"""`vpbx calls export --month YYYY-MM [--format csv|json] [--out FILE]` (issue 14): a month's call records with their
costs, the export a provider hands to accounting. Through Click's CliRunner on an install made by `vpbx init`; the
call records are written with the store as the engine writes them."""
from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import clitools
from clitools import dump, ok
from vpbx.billing.outbound import OutboundRate
from vpbx.domain.records import Account
from vpbx.services import charging
from vpbx.services.calls import EXPORT_COLUMNS
from vpbx.storage.store import Store

NUMBER = "+74952718459"
BERLIN = "+4930123456"
HEADER = ("call_id,started_at,direction,number,caller,reached,billsec,account,cost,rate_prefix,disposition,"
          "sip_account")


class Site(clitools.Site):
    def out(self, *args: Any) -> str:
        result = ok(self(*args))
        assert result.stderr == "", result.stderr
        return result.stdout

    def fails(self, *args: Any, needles: tuple[str, ...] = ()) -> str:
        before = dump(self.db)
        result = self(*args)
        assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
        assert isinstance(result.exception, SystemExit), result.exception
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and result.stdout == "", result.output
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])
        assert dump(self.db) == before
        return lines[0]


def _call(store: Store, call_id: str, started: str, **facts: Any) -> None:
    store.calls.add(call_id, NUMBER, facts.pop("caller", "+79161112233"), facts.pop("direction", "inbound"),
                    started_at=started, sip_account=facts.pop("sip_account", None))
    if facts:
        store.calls.finish(call_id, **facts)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path)
    ok(s("init", "--dir", tmp_path))
    with Store.open(s.db) as store:
        store.accounts.add(Account("acme", "acme@example.com"))
        store.accounts.post("acme", 100000, "topup", "2026-02-01")
        store.rates.replace_outbound([OutboundRate("4930", 400, 30, 6, 0, "Berlin")])
        _call(store, "before", "2026-02-28T23:59:59+00:00", ended_at="2026-03-01T00:01:00+00:00", billsec=40,
              disposition="answered")
        _call(store, "first", "2026-03-01T00:00:00+00:00", ended_at="2026-03-01T00:02:00+00:00", billsec=100,
              answered_at="2026-03-01T00:00:20+00:00", reached="sip:alice", disposition="answered")
        _call(store, "out", "2026-03-15T10:00:00+00:00", direction="outbound", caller=NUMBER, sip_account="alice",
              ended_at="2026-03-15T10:01:01+00:00", answered_at="2026-03-15T10:00:00+00:00", reached=f"tel:{BERLIN}",
              billsec=61, disposition="answered")
        charging.charge_outbound(store, "out", "acme", None, OutboundRate("4930", 400, 30, 6, 0, "Berlin"), 61)
        _call(store, "missed", "2026-03-31T23:59:59+00:00", ended_at="2026-04-01T00:00:30+00:00",
              disposition="missed")
        _call(store, "running", "2026-03-31T12:00:00+00:00")           # not ended yet: exported as it stands
        _call(store, "after", "2026-04-01T00:00:00+00:00", ended_at="2026-04-01T00:00:10+00:00", billsec=10,
              disposition="answered")
    return s


def test_csv_to_stdout_has_every_call_of_the_month_with_its_cost(site: Site) -> None:
    text = site.out("calls", "export", "--month", "2026-03")
    assert text.splitlines()[0] == HEADER == ",".join(EXPORT_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["call_id"] for r in rows] == ["first", "out", "running", "missed"]       # oldest first, UTC month
    out = rows[1]
    assert out == {"call_id": "out", "started_at": "2026-03-15T10:00:00+00:00", "direction": "outbound",
                   "number": NUMBER, "caller": NUMBER, "reached": f"tel:{BERLIN}", "billsec": "61",
                   "account": "acme", "cost": "440", "rate_prefix": "4930", "disposition": "answered",
                   "sip_account": "alice"}
    assert (rows[0]["cost"], rows[0]["account"], rows[0]["rate_prefix"]) == ("", "", "")     # not charged
    assert rows[2]["disposition"] == ""                                                      # still running


def test_json_is_one_list_with_integer_costs(site: Site) -> None:
    doc = json.loads(site.out("calls", "export", "--month", "2026-03", "--format", "json"))
    assert [d["call_id"] for d in doc] == ["first", "out", "running", "missed"]
    assert all(list(d) == list(EXPORT_COLUMNS) for d in doc)
    assert (doc[1]["cost"], doc[1]["billsec"], doc[0]["cost"]) == (440, 61, None)


def test_an_empty_month_is_a_header_or_an_empty_list(site: Site) -> None:
    assert site.out("calls", "export", "--month", "2025-01") == HEADER + "\n"
    assert json.loads(site.out("calls", "export", "--month", "2025-01", "--format", "json")) == []


def test_out_writes_the_file_whole_owner_only_and_replaces_an_old_one(site: Site, tmp_path: Path) -> None:
    target = tmp_path / "exports" / "march.csv"
    target.parent.mkdir()
    target.write_text("an older export\n")
    assert site.out("calls", "export", "--month", "2026-03", "--out", target) == ""
    assert target.read_text(encoding="utf-8").splitlines()[0] == HEADER
    assert len(target.read_text(encoding="utf-8").splitlines()) == 5
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert sorted(os.listdir(target.parent)) == ["march.csv"]                  # no temp file left
    site.out("calls", "export", "--month", "2026-04", "--format", "json", "--out", target)
    assert [d["call_id"] for d in json.loads(target.read_text(encoding="utf-8"))] == ["after"]


def test_a_failed_export_writes_nothing(site: Site, tmp_path: Path) -> None:
    target = tmp_path / "march.csv"
    site.fails("calls", "export", "--month", "2026-13", "--out", target,
               needles=("month '2026-13' is not YYYY-MM", "--month 2026-11"))
    site.fails("calls", "export", "--month", "March", needles=("month 'March' is not YYYY-MM",))
    site.fails("calls", "export", "--month", "0001-01", needles=("out of range",))
    assert not target.exists()
    site.fails("calls", "export", "--month", "2026-03", "--out", tmp_path / "no-such-dir" / "x.csv",
               needles=("cannot be written", "give a file in a directory you may write to"))
    (tmp_path / "adir").mkdir()
    result = site("calls", "export", "--month", "2026-03", "--out", tmp_path / "adir")
    assert result.exit_code == 2                                   # Click: --out must not be a directory
    assert os.listdir(tmp_path / "adir") == []


def test_usage(site: Site) -> None:
    assert site("calls", "export").exit_code == 2                              # --month is required
    assert site("calls", "export", "--month", "2026-03", "--format", "xml").exit_code == 2
    assert "Write a month's call records with their costs" in site.out("calls", "export", "--help")
