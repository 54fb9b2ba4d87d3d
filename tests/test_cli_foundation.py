"""CLI contract of issue 2 (init, number, sip, trunk), run through Click's CliRunner against real temp files.

Every error must: exit 1, print exactly one `Error: ...` line on stderr naming the object, write nothing to the DB.
Usage errors exit 2. Every --json add/list/show prints exactly one JSON document on stdout.
"""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from clitools import dump, ok
from vpbx.cli import main
from vpbx.storage.store import Store

VPBX_SRC = Path(__file__).resolve().parent.parent / "vpbx"
CLEAN_ENV = {"VPBX_CONFIG": None, "VPBX_DB": None, "COLUMNS": "250"}  # wide console: rich tables never wrap a value

KYIV = "+380441234567"          # geographic, Kyiv city, gold (subscriber 1234567)
KYIV2 = "+380442718459"         # geographic, Kyiv city, regular
KYIVSTAR = "+380671234777"      # mobile, Kyivstar, bronze
VODAFONE = "+380502718459"      # mobile, Vodafone, regular
UA_TOLLFREE = "+380800123456"   # toll-free, gold
RU_TOLLFREE = "+78002718459"    # toll-free (8 800), regular
PLATINUM = "+380441777777"      # geographic, Kyiv city, platinum
SILVER = "+380441230000"        # geographic, Kyiv city, silver
MOSCOW = "+74952718459"         # geographic, Moscow, regular


# ---- helpers -------------------------------------------------------------------------------------------------
def invoke(args: list[str], env: dict | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env={**CLEAN_ENV, **(env or {})})


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def one_json(result: Result):
    ok(result)
    assert result.stderr == ""
    return json.loads(result.stdout)  # raises on anything besides exactly one JSON document (whitespace aside)


def error_line(result: Result, *needles: str, stdout_empty: bool = True) -> str:
    """exit 1 through the Error: path (not an escaped exception), stderr exactly one `Error: ` line with every
    needle."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r} instead of an Error: line"
    assert result.stderr.endswith("\n")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if stdout_empty:
        assert result.stdout == ""
    return lines[0]


def usage_error(result: Result) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Usage: " in result.stderr
    assert "Error: " in result.stderr
    assert result.stdout == ""


class Vpbx:
    """`vpbx --config <tmp>/vpbx.toml ...` on a config + DB made by `vpbx init`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cfg = tmp / "vpbx.toml"
        self.db = tmp / "vpbx.db"

    def __call__(self, *args: object) -> Result:
        return invoke(["--config", self.cfg, *args])

    def dump(self) -> str:
        return dump(self.db)

    def fails(self, *args: object, needles: tuple[str, ...] = (), stdout_empty: bool = True) -> str:
        """Run a command that must fail: one Error: line naming `needles`, DB byte-for-byte the same dump."""
        before = self.dump()
        line = error_line(self(*args), *needles, stdout_empty=stdout_empty)
        assert self.dump() == before, "a failed command changed the database"
        return line

    def usage(self, *args: object) -> None:
        before = self.dump()
        usage_error(self(*args))
        assert self.dump() == before


@pytest.fixture
def vp(tmp_path: Path) -> Vpbx:
    v = Vpbx(tmp_path)
    ok(invoke(["--config", v.cfg, "init", "--dir", tmp_path]))
    return v


def numbers_in(v: Vpbx, *filters: str) -> list[str]:
    return [n["number"] for n in one_json(v("number", "list", *filters, "--json"))]


# ---- init ----------------------------------------------------------------------------------------------------
def test_init_writes_toml_mode_0600_with_all_settings(tmp_path: Path) -> None:
    old = os.umask(0)  # the 0600 must not depend on the caller's umask
    try:
        result = ok(invoke(["init", "--dir", tmp_path / "site"]))
    finally:
        os.umask(old)
    cfg_path = tmp_path / "site" / "vpbx.toml"
    assert str(cfg_path) in result.stdout
    assert mode(cfg_path) == 0o600
    cfg = tomllib.loads(cfg_path.read_text())
    assert cfg["vpbx"]["db"] == str(tmp_path / "site" / "vpbx.db")
    assert cfg["asterisk"]["config_dir"] == "/etc/asterisk"
    assert cfg["ari"]["url"] == "http://127.0.0.1:8088"
    assert cfg["ami"]["host"] == "127.0.0.1"
    assert cfg["ami"]["port"] == 5038
    assert set(cfg["smtp"]) >= {"host", "port", "user", "password", "sender"}
    db = tmp_path / "site" / "vpbx.db"
    assert db.exists() and mode(db) == 0o600
    with Store.open(db) as store:
        assert store.numbers.search() == []


def _secrets(cfg_path: Path) -> tuple[str, str]:
    cfg = tomllib.loads(cfg_path.read_text())
    return cfg["ari"]["password"], cfg["ami"]["secret"]


def test_init_secrets_are_fresh_and_not_fixed(tmp_path: Path) -> None:
    seen: list[str] = []
    for i in range(4):
        ok(invoke(["init", "--dir", tmp_path / f"i{i}"]))
        ari, ami = _secrets(tmp_path / f"i{i}" / "vpbx.toml")
        for secret in (ari, ami):
            assert len(secret) >= 20
            assert secret.lower() not in {"", "vpbx", "secret", "password", "changeme", "asterisk", "admin"}
        seen += [ari, ami]
    assert len(set(seen)) == len(seen), "ARI/AMI secrets repeat between inits (or ARI == AMI)"
    source = "\n".join(p.read_text() for p in VPBX_SRC.rglob("*.py"))
    for secret in seen:
        assert secret not in source, "secret is a constant from the source"


def test_init_refuses_overwrite_without_force(tmp_path: Path) -> None:
    ok(invoke(["init", "--dir", tmp_path]))
    cfg_path = tmp_path / "vpbx.toml"
    before = cfg_path.read_bytes()
    db_before = dump(tmp_path / "vpbx.db")
    error_line(invoke(["init", "--dir", tmp_path]), str(cfg_path), "--force")
    assert cfg_path.read_bytes() == before
    assert mode(cfg_path) == 0o600
    assert dump(tmp_path / "vpbx.db") == db_before


def test_init_force_replaces_with_new_secrets_and_keeps_data(tmp_path: Path) -> None:
    ok(invoke(["init", "--dir", tmp_path]))
    cfg_path = tmp_path / "vpbx.toml"
    ari1, ami1 = _secrets(cfg_path)
    ok(invoke(["--config", cfg_path, "number", "add", KYIV]))
    ok(invoke(["init", "--dir", tmp_path, "--force"]))
    ari2, ami2 = _secrets(cfg_path)
    assert ari2 != ari1 and ami2 != ami1
    assert mode(cfg_path) == 0o600
    assert numbers_in(Vpbx(tmp_path)) == [KYIV]


def test_init_honours_config_and_db_paths(tmp_path: Path) -> None:
    cfg_path, db = tmp_path / "etc" / "pbx.toml", tmp_path / "var" / "pbx.db"
    ok(invoke(["--config", cfg_path, "--db", db, "init", "--dir", tmp_path]))
    assert mode(cfg_path) == 0o600
    assert tomllib.loads(cfg_path.read_text())["vpbx"]["db"] == str(db)
    assert db.exists() and mode(db) == 0o600
    assert not (tmp_path / "vpbx.toml").exists()


def test_env_vars_select_config_and_db(tmp_path: Path) -> None:
    cfg_path = tmp_path / "a.toml"
    ok(invoke(["--config", cfg_path, "init", "--dir", tmp_path]))   # init never writes where VPBX_CONFIG points
    assert cfg_path.exists()
    ok(invoke(["number", "add", KYIV], env={"VPBX_CONFIG": str(cfg_path)}))
    other = tmp_path / "other.db"
    ok(invoke(["number", "add", KYIV2], env={"VPBX_CONFIG": str(cfg_path), "VPBX_DB": str(other)}))
    listed = one_json(invoke(["number", "list", "--json"], env={"VPBX_CONFIG": str(cfg_path)}))
    assert [n["number"] for n in listed] == [KYIV]
    assert [n["number"] for n in one_json(invoke(["--db", other, "number", "list", "--json"]))] == [KYIV2]


def test_missing_config_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    error_line(invoke(["--config", missing, "number", "list"]), str(missing), "vpbx init")


# ---- number add ----------------------------------------------------------------------------------------------
def test_number_add_fills_type_city_operator_and_defaults(vp: Vpbx) -> None:
    n = one_json(vp("number", "add", KYIV, "--json"))
    assert {k: n[k] for k in ("number", "type", "city", "operator", "country", "category", "channels", "direction",
                              "trunk", "comment")} == {
        "number": KYIV, "type": "geographic", "city": "Kyiv city", "operator": "", "country": "UA",
        "category": "gold", "channels": 4, "direction": "in", "trunk": None, "comment": ""}
    m = one_json(vp("number", "add", KYIVSTAR, "--json"))
    assert (m["type"], m["city"], m["operator"], m["category"]) == ("mobile", "", "Kyivstar", "bronze")
    t = one_json(vp("number", "add", UA_TOLLFREE, "--json"))
    assert (t["type"], t["direction"]) == ("tollfree", "in")
    assert one_json(vp("number", "show", KYIV, "--json")) == n


def test_number_add_table_output(vp: Vpbx) -> None:
    out = ok(vp("number", "add", MOSCOW)).stdout
    assert MOSCOW in out and "Moscow" in out and "geographic" in out
    assert ok(vp("number", "list")).stdout.count(MOSCOW) == 1


def test_number_add_overrides(vp: Vpbx) -> None:
    n = one_json(vp("number", "add", KYIV, "--city", "Lviv", "--operator", "Acme Telecom", "--type", "mobile",
                    "--channels", "16", "--direction", "both", "--comment", "Main office, 2nd floor (reception)",
                    "--json"))
    assert (n["city"], n["operator"], n["type"], n["channels"], n["direction"], n["comment"]) == (
        "Lviv", "Acme Telecom", "mobile", 16, "both", "Main office, 2nd floor (reception)")
    assert one_json(vp("number", "show", KYIV, "--json")) == n


def test_number_add_channels_minimum_is_4(vp: Vpbx) -> None:
    assert one_json(vp("number", "add", KYIV, "--channels", "4", "--json"))["channels"] == 4
    for bad in ("3", "1", "0", "-5"):
        vp.fails("number", "add", KYIV2, "--channels", bad, needles=(KYIV2, "channels", "4"))


@pytest.mark.parametrize("bad", ["380441234567", "+380 44 123 4567", "+38044123", "+380001234567", "+0441234567",
                                 "hello", "+1", "+12345678901234567", ""])
def test_number_add_rejects_non_e164(vp: Vpbx, bad: str) -> None:
    vp.fails("number", "add", bad, needles=(f"number {bad!r}",))


@pytest.mark.parametrize("number_", [UA_TOLLFREE, RU_TOLLFREE, "+18002718459"])
@pytest.mark.parametrize("direction", ["out", "both"])
def test_tollfree_is_inbound_only(vp: Vpbx, number_: str, direction: str) -> None:
    vp.fails("number", "add", number_, "--direction", direction, needles=(number_, "toll-free", "--direction in"))
    assert one_json(vp("number", "add", number_, "--direction", "in", "--json"))["type"] == "tollfree"


def test_number_add_unknown_trunk(vp: Vpbx) -> None:
    vp.fails("number", "add", KYIV, "--trunk", "nosuch", needles=("trunk nosuch", KYIV))


def test_number_add_duplicate(vp: Vpbx) -> None:
    ok(vp("number", "add", KYIV))
    vp.fails("number", "add", KYIV, needles=(KYIV, "already exists"))


@pytest.mark.parametrize("text", ["line1\nline2", "a[b", "a]b", "a;b", "a=b", "a#b", "#include /etc/passwd",
                                  "x\r\n[evil]", "tab\there"])
@pytest.mark.parametrize("field", ["--comment", "--city", "--operator"])
def test_number_add_rejects_config_injection(vp: Vpbx, field: str, text: str) -> None:
    vp.fails("number", "add", KYIV, field, text, needles=(KYIV, field.lstrip("-")))


@pytest.mark.parametrize("trunk", ["a;b", "a[b]", "a\nb", "a=b", "#x", "a b"])
def test_number_add_rejects_bad_trunk_name(vp: Vpbx, trunk: str) -> None:
    vp.fails("number", "add", KYIV, "--trunk", trunk, needles=("trunk name",))


# ---- number list / show --------------------------------------------------------------------------------------
@pytest.fixture
def many(vp: Vpbx) -> Vpbx:
    for n in (KYIV, KYIV2, KYIVSTAR, VODAFONE, UA_TOLLFREE, PLATINUM, SILVER, MOSCOW):
        ok(vp("number", "add", n))
    return vp


def test_number_list_all_sorted(many: Vpbx) -> None:
    assert numbers_in(many) == sorted([KYIV, KYIV2, KYIVSTAR, VODAFONE, UA_TOLLFREE, PLATINUM, SILVER, MOSCOW])


@pytest.mark.parametrize("filters, expected", [
    (("--category", "platinum"), [PLATINUM]),
    (("--category", "silver"), [SILVER]),
    (("--category", "gold"), [KYIV, UA_TOLLFREE]),
    (("--category", "bronze"), [KYIVSTAR]),
    (("--category", "regular"), [KYIV2, VODAFONE, MOSCOW]),
    (("--type", "mobile"), [KYIVSTAR, VODAFONE]),
    (("--type", "tollfree"), [UA_TOLLFREE]),
    (("--type", "geographic"), [KYIV, KYIV2, PLATINUM, SILVER, MOSCOW]),
    (("--type", "other"), []),
    (("--city", "Kyiv"), [KYIV, KYIV2, PLATINUM, SILVER]),
    (("--city", "moscow"), [MOSCOW]),
    (("--city", "Odesa"), []),
    (("--operator", "Kyivstar"), [KYIVSTAR]),
    (("--operator", "Vodafone"), [VODAFONE]),
    (("--contains", "2718459"), [KYIV2, VODAFONE, MOSCOW]),
    (("--contains", "777"), [KYIVSTAR, PLATINUM]),
    (("--contains", "0000"), [SILVER]),
    (("--contains", "9999"), []),
    (("--type", "mobile", "--contains", "2718459"), [VODAFONE]),
    (("--city", "Kyiv", "--category", "regular"), [KYIV2]),
])
def test_number_list_filters(many: Vpbx, filters: tuple[str, ...], expected: list[str]) -> None:
    assert numbers_in(many, *filters) == sorted(expected)


def test_number_list_filter_errors(many: Vpbx) -> None:
    many.fails("number", "list", "--contains", "12a", needles=("--contains", "12a"))
    many.usage("number", "list", "--category", "shiny")
    many.usage("number", "list", "--type", "fax")


def test_number_list_empty(vp: Vpbx) -> None:
    assert one_json(vp("number", "list", "--json")) == []
    assert ok(vp("number", "list")).stderr == ""


def test_number_show(many: Vpbx) -> None:
    shown = one_json(many("number", "show", KYIVSTAR, "--json"))
    assert (shown["number"], shown["operator"], shown["type"]) == (KYIVSTAR, "Kyivstar", "mobile")
    table = ok(many("number", "show", KYIVSTAR)).stdout
    assert KYIVSTAR in table and "Kyivstar" in table
    many.fails("number", "show", "+380449999999", needles=("+380449999999", "not found"))


# ---- number set ----------------------------------------------------------------------------------------------
def test_number_set_bulk(many: Vpbx) -> None:
    ok(many("trunk", "add", "prov", "--server", "sip.example.net", "--login", "u1", "--password", "secretpw1"))
    changed = one_json(many("number", "set", KYIV, KYIV2, MOSCOW, "--channels", "10", "--direction", "both",
                            "--comment", "bulk moved", "--trunk", "prov", "--json"))
    assert [c["number"] for c in changed] == [KYIV, KYIV2, MOSCOW]
    for n in (KYIV, KYIV2, MOSCOW):
        shown = one_json(many("number", "show", n, "--json"))
        assert (shown["channels"], shown["direction"], shown["comment"], shown["trunk"]) == \
            (10, "both", "bulk moved", "prov")
    untouched = one_json(many("number", "show", KYIVSTAR, "--json"))
    assert (untouched["channels"], untouched["direction"], untouched["trunk"]) == (4, "in", None)
    one_json(many("number", "set", KYIV, "--trunk", "", "--json"))
    assert one_json(many("number", "show", KYIV, "--json"))["trunk"] is None
    assert one_json(many("number", "show", KYIV2, "--json"))["trunk"] == "prov"


def test_number_set_all_or_nothing(many: Vpbx) -> None:
    many.fails("number", "set", KYIV, KYIV2, "+380449999999", "--channels", "12",
               needles=("+380449999999", "not found"))
    many.fails("number", "set", "+380449999999", KYIV, "--channels", "12", needles=("+380449999999",))
    many.fails("number", "set", KYIV, KYIV2, "--trunk", "nosuch", needles=("trunk nosuch",))
    many.fails("number", "set", KYIV, UA_TOLLFREE, "--direction", "out", needles=(UA_TOLLFREE, "toll-free"))
    assert one_json(many("number", "show", KYIV, "--json"))["channels"] == 4


def test_number_set_validation(many: Vpbx) -> None:
    many.fails("number", "set", KYIV, "--channels", "3", needles=("channels", "4"))
    for text in ("a\nb", "a[b", "a]b", "a;b", "a=b", "#include x"):
        many.fails("number", "set", KYIV, "--comment", text, needles=("comment",))
    many.fails("number", "set", KYIV, "--trunk", "a;b", needles=("trunk name",))
    many.usage("number", "set", KYIV)                         # nothing to change
    many.usage("number", "set", "--channels", "8")            # no NUMBER
    many.usage("number", "set", KYIV, "--direction", "sideways")


# ---- number remove -------------------------------------------------------------------------------------------
def test_number_remove(many: Vpbx) -> None:
    assert ok(many("number", "remove", KYIV2)).stdout.strip() == f"Removed number {KYIV2}"
    assert KYIV2 not in numbers_in(many)
    many.fails("number", "show", KYIV2, needles=(KYIV2,))
    many.fails("number", "remove", KYIV2, needles=(KYIV2, "not found"))


def test_number_remove_refused_while_caller_id(many: Vpbx) -> None:
    ok(many("sip", "add", "alice", "--caller-id", KYIV))
    many.fails("number", "remove", KYIV, needles=(f"number {KYIV}", "SIP account alice", "caller ID"))
    assert KYIV in numbers_in(many)
    ok(many("sip", "remove", "alice"))
    ok(many("number", "remove", KYIV))
    assert KYIV not in numbers_in(many)


# ---- number import -------------------------------------------------------------------------------------------
CSV_HEADER = "number,channels,direction,trunk,comment,city,operator,type\n"


def test_number_import_happy_path(vp: Vpbx) -> None:
    ok(vp("trunk", "add", "prov", "--server", "10.0.0.1", "--login", "u1", "--password", "secretpw1"))
    csv_file = vp.tmp / "numbers.csv"
    csv_file.write_text(CSV_HEADER
                        + f"{KYIV},8,both,prov,front desk,,,\n"
                        + f"{KYIVSTAR},,,,,,,\n"
                        + f"{UA_TOLLFREE},,in,,hotline,,,\n"
                        + f"{MOSCOW},6,out,,,Moskva,Rostelecom,geographic\n")
    assert one_json(vp("number", "import", csv_file, "--json")) == {"imported": 4}
    rows = {n["number"]: n for n in one_json(vp("number", "list", "--json"))}
    assert sorted(rows) == sorted([KYIV, KYIVSTAR, UA_TOLLFREE, MOSCOW])
    assert (rows[KYIV]["channels"], rows[KYIV]["direction"], rows[KYIV]["trunk"], rows[KYIV]["comment"]) == \
        (8, "both", "prov", "front desk")
    assert (rows[KYIVSTAR]["channels"], rows[KYIVSTAR]["operator"], rows[KYIVSTAR]["type"]) == (4, "Kyivstar", "mobile")
    assert (rows[UA_TOLLFREE]["type"], rows[UA_TOLLFREE]["comment"]) == ("tollfree", "hotline")
    assert (rows[MOSCOW]["city"], rows[MOSCOW]["operator"], rows[MOSCOW]["direction"]) == \
        ("Moskva", "Rostelecom", "out")


def test_number_import_minimal_csv_table_output(vp: Vpbx) -> None:
    csv_file = vp.tmp / "n.csv"
    csv_file.write_text(f"number\n{KYIV}\n{KYIV2}\n")
    assert "Imported 2 numbers" in ok(vp("number", "import", csv_file)).stdout
    assert numbers_in(vp) == [KYIV, KYIV2]


@pytest.mark.parametrize("bad_row, needle", [
    ("380441230000,,,,,,,", "380441230000"),                    # not E.164
    (f"{SILVER},3,,,,,,", SILVER),                               # channels < 4
    (f"{SILVER},abc,,,,,,", "line 4"),                           # channels not a number
    (f"{UA_TOLLFREE},,out,,,,,", UA_TOLLFREE),                   # toll-free outbound
    (f"{SILVER},,,,a;b,,,", SILVER),                             # comment injection
    (f'{SILVER},,,,"a\nb",,,', SILVER),                           # newline in a quoted CSV field
    (f"{SILVER},,,nosuch,,,,", "trunk nosuch"),                  # unknown trunk
    (f"{KYIV},,,,,,,", KYIV),                                    # duplicate of an earlier row
    (f"{SILVER},,sideways,,,,,", SILVER),                        # bad direction
    (f"{SILVER},,,,,,,fax", SILVER),                             # bad type
])
def test_number_import_one_bad_row_imports_nothing(vp: Vpbx, bad_row: str, needle: str) -> None:
    ok(vp("number", "add", PLATINUM))
    csv_file = vp.tmp / "bad.csv"
    csv_file.write_text(CSV_HEADER + f"{KYIV},,,,,,,\n{KYIV2},,,,,,,\n{bad_row}\n{MOSCOW},,,,,,,\n")
    vp.fails("number", "import", csv_file, "--json", needles=(needle,))
    vp.fails("number", "import", csv_file, needles=(needle,), stdout_empty=False)  # progress bar may draw on stdout
    assert numbers_in(vp) == [PLATINUM]


def test_number_import_existing_number_imports_nothing(vp: Vpbx) -> None:
    ok(vp("number", "add", KYIV2))
    csv_file = vp.tmp / "dup.csv"
    csv_file.write_text(f"number\n{KYIV}\n{KYIV2}\n")
    vp.fails("number", "import", csv_file, "--json", needles=(KYIV2, "already exists"))
    assert numbers_in(vp) == [KYIV2]


def test_number_import_file_errors(vp: Vpbx) -> None:
    empty = vp.tmp / "empty.csv"
    empty.write_text("")
    vp.fails("number", "import", empty, needles=(str(empty),))
    noheader = vp.tmp / "noheader.csv"
    noheader.write_text(f"phone\n{KYIV}\n")
    vp.fails("number", "import", noheader, needles=(str(noheader), "number"))
    vp.usage("number", "import", vp.tmp / "missing.csv")


# ---- sip -----------------------------------------------------------------------------------------------------
def _stored_password(v: Vpbx, login: str) -> str:
    with Store.open(v.db) as store:
        return store.sip_accounts.get(login).password


def test_sip_add_generates_a_fresh_password_shown_once(vp: Vpbx) -> None:
    ok(vp("number", "add", KYIV))
    a = one_json(vp("sip", "add", "alice", "--caller-id", KYIV, "--json"))
    b = one_json(vp("sip", "add", "bob", "--json"))
    assert set(a) >= {"login", "password", "domain", "caller_id", "channels"}
    assert (a["login"], a["caller_id"], a["domain"]) == ("alice", KYIV, "vpbx.local")
    assert (b["login"], b["caller_id"]) == ("bob", None)
    for acc in (a, b):
        assert len(acc["password"]) >= 20
        assert acc["password"] == _stored_password(vp, acc["login"])
    assert a["password"] != b["password"]
    table = ok(vp("sip", "add", "carol")).stdout
    carol_pw = _stored_password(vp, "carol")
    assert carol_pw in table and len(carol_pw) >= 20 and carol_pw not in (a["password"], b["password"])
    listed_json = one_json(vp("sip", "list", "--json"))
    assert [x["login"] for x in listed_json] == ["alice", "bob", "carol"]
    assert all("password" not in x for x in listed_json)
    outputs = [vp("sip", "list", "--json").stdout, ok(vp("sip", "list")).stdout]
    for login in ("alice", "bob", "carol"):
        shown = one_json(vp("sip", "show", login, "--json"))
        assert "password" not in shown and shown["login"] == login
        outputs += [vp("sip", "show", login, "--json").stdout, ok(vp("sip", "show", login)).stdout]
    assert "alice" in outputs[1] and KYIV in outputs[1]
    for out in outputs:
        for pw in (a["password"], b["password"], carol_pw):
            assert pw not in out


def test_sip_add_domain_comes_from_config(vp: Vpbx) -> None:
    vp.cfg.write_text(vp.cfg.read_text().replace('domain = "vpbx.local"', 'domain = "pbx.example.org"'))
    assert one_json(vp("sip", "add", "alice", "--json"))["domain"] == "pbx.example.org"
    assert one_json(vp("sip", "show", "alice", "--json"))["domain"] == "pbx.example.org"


def test_sip_add_given_password(vp: Vpbx) -> None:
    acc = one_json(vp("sip", "add", "alice", "--password", "Exactly8", "--channels", "3", "--json"))
    assert (acc["password"], acc["channels"]) == ("Exactly8", 3)
    assert _stored_password(vp, "alice") == "Exactly8"


@pytest.mark.parametrize("password", ["short7c", "has space1", "semi;colon", "new\nline123", "br[acket12",
                                      "br]acket12", "equ=als123", "#include12", ""])
def test_sip_add_rejects_bad_password(vp: Vpbx, password: str) -> None:
    vp.fails("sip", "add", "alice", "--password", password, needles=("password",))


@pytest.mark.parametrize("login", ["bad login", "a;b", "a[b", "a]b", "a=b", "a#b", "a\nb", "_lead", ".lead",
                                   "ünïcode", "x" * 65, ""])
def test_sip_add_rejects_bad_login(vp: Vpbx, login: str) -> None:
    vp.fails("sip", "add", login, needles=(f"login {login!r}",))


def test_sip_add_duplicate_and_unknown_caller_id(vp: Vpbx) -> None:
    ok(vp("sip", "add", "alice"))
    vp.fails("sip", "add", "alice", needles=("SIP account alice", "already exists"))
    vp.fails("sip", "add", "bob", "--caller-id", "+380449999999", needles=("+380449999999", "vpbx number add"))
    vp.fails("sip", "add", "bob", "--channels", "0", needles=("SIP account bob", "channels"))
    vp.usage("sip", "add", "bob", "--channels", "many")
    vp.usage("sip", "add")


def test_sip_passwd(vp: Vpbx) -> None:
    old = one_json(vp("sip", "add", "alice", "--json"))["password"]
    new = one_json(vp("sip", "passwd", "alice", "--json"))
    assert set(new) == {"login", "password"}
    assert new["login"] == "alice" and len(new["password"]) >= 20 and new["password"] != old
    assert _stored_password(vp, "alice") == new["password"]
    table = ok(vp("sip", "passwd", "alice")).stdout
    newer = _stored_password(vp, "alice")
    assert newer in table and newer not in (old, new["password"])
    vp.fails("sip", "passwd", "nosuch", needles=("SIP account nosuch", "not found"))
    vp.usage("sip", "passwd")


def test_sip_show_remove(vp: Vpbx) -> None:
    ok(vp("sip", "add", "alice"))
    ok(vp("sip", "add", "bob"))
    assert ok(vp("sip", "remove", "alice")).stdout.strip() == "Removed SIP account alice"
    assert [x["login"] for x in one_json(vp("sip", "list", "--json"))] == ["bob"]
    vp.fails("sip", "show", "alice", needles=("SIP account alice", "not found"))
    vp.fails("sip", "remove", "alice", needles=("SIP account alice", "not found"))
    ok(vp("sip", "remove", "bob"))
    assert one_json(vp("sip", "list", "--json")) == []


def _dump(v: Vpbx) -> list[str]:
    con = sqlite3.connect(v.db)
    try:
        return [line for line in con.iterdump() if "_sqlite_migrations" not in line]
    finally:
        con.close()


def test_sip_codecs_and_dtmf_on_add_set_show(vp: Vpbx) -> None:
    ok(vp("number", "add", KYIV))
    a = one_json(vp("sip", "add", "alice", "--codecs", "g722,alaw", "--dtmf", "inband", "--json"))
    assert (a["codecs"], a["dtmf"]) == (["g722", "alaw"], "inband")
    b = one_json(vp("sip", "add", "bob", "--json"))
    assert (b["codecs"], b["dtmf"]) == ([], "rfc4733")            # [] = the install's [sip] codecs
    shown = one_json(vp("sip", "set", "bob", "--codecs", "opus,g722,ulaw", "--dtmf", "info", "--caller-id", KYIV,
                        "--json"))
    assert "password" not in shown
    assert (shown["codecs"], shown["dtmf"], shown["caller_id"]) == (["opus", "g722", "ulaw"], "info", KYIV)
    show = one_json(vp("sip", "show", "bob", "--json"))
    assert show.pop("outbound")["allowed"] == "UA"     # + the toll-fraud guards as they apply and today's use
    assert show == shown
    table = ok(vp("sip", "show", "bob")).stdout
    assert "opus" in table and "info" in table
    ok(vp("sip", "set", "bob", "--codecs", "default", "--caller-id", ""))
    again = one_json(vp("sip", "show", "bob", "--json"))
    assert (again["codecs"], again["dtmf"], again["caller_id"]) == ([], "info", None)


@pytest.mark.parametrize("args,needles", [
    (("--codecs", "g729"), ("SIP account alice", "codec 'g729' is unknown")),
    (("--codecs", "G722"), ("codec 'G722' is unknown",)),
    (("--codecs", "g722, alaw"), ("codec ' alaw' is unknown",)),
    (("--codecs", "alaw,alaw"), ("listed twice",)),
    (("--codecs", ""), ("codec '' is unknown",)),
    (("--dtmf", "rfc2833"), ("DTMF mode 'rfc2833' is unknown", "rfc4733")),
    (("--dtmf", "inband", "--codecs", "g722"), ("inband DTMF", "alaw")),
    (("--codecs", "g722", "--dtmf", "info", "--caller-id", "+380449999999"), ("+380449999999", "vpbx number add")),
    ((), ("nothing to change",)),
])
def test_sip_set_refused_input_changes_nothing(vp: Vpbx, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    ok(vp("sip", "add", "alice", "--codecs", "alaw,ulaw", "--dtmf", "auto"))
    before = _dump(vp)
    vp.fails("sip", "set", "alice", *args, needles=needles)
    assert _dump(vp) == before


def test_sip_set_unknown_account(vp: Vpbx) -> None:
    vp.fails("sip", "set", "nosuch", "--dtmf", "info", needles=("SIP account nosuch", "not found"))
    vp.usage("sip", "set")


# ---- trunks --------------------------------------------------------------------------------------------------
def test_trunk_add_list_show_remove(vp: Vpbx) -> None:
    t = one_json(vp("trunk", "add", "prov", "--server", "sip.example.net", "--login", "user1",
                    "--password", "Pr0v-Secret", "--json"))
    assert t == {"name": "prov", "server": "sip.example.net", "port": 5060, "login": "user1", "transport": "udp",
                 "register": True, "srtp": False, "account": None}
    t2 = one_json(vp("trunk", "add", "backup", "--server", "10.0.0.1", "--port", "5080", "--login", "u.2",
                     "--password", "Other-Secret", "--transport", "tls", "--no-register", "--json"))
    assert (t2["port"], t2["transport"], t2["register"]) == (5080, "tls", False)
    listed = one_json(vp("trunk", "list", "--json"))
    assert [x["name"] for x in listed] == ["backup", "prov"]
    assert one_json(vp("trunk", "show", "prov", "--json")) == t
    table_outputs = [ok(vp("trunk", "list")).stdout, ok(vp("trunk", "show", "prov")).stdout,
                     ok(vp("trunk", "add", "third", "--server", "h3", "--login", "u3", "--password",
                           "Third-Secret")).stdout]
    assert "sip.example.net" in table_outputs[0] and "sip.example.net" in table_outputs[1]
    for out in [*table_outputs, vp("trunk", "list", "--json").stdout, vp("trunk", "show", "prov", "--json").stdout]:
        for pw in ("Pr0v-Secret", "Other-Secret", "Third-Secret"):
            assert pw not in out
    with Store.open(vp.db) as store:
        assert store.trunks.get("prov").password == "Pr0v-Secret"
    assert ok(vp("trunk", "remove", "backup")).stdout.strip() == "Removed trunk backup"
    assert [x["name"] for x in one_json(vp("trunk", "list", "--json"))] == ["prov", "third"]
    vp.fails("trunk", "show", "backup", needles=("trunk backup", "not found"))
    vp.fails("trunk", "remove", "backup", needles=("trunk backup", "not found"))


def _trunk(*extra: str, name: str = "prov", server: str = "sip.example.net", login: str = "user1",
           password: str = "Pr0v-Secret") -> list[str]:
    return ["trunk", "add", name, "--server", server, "--login", login, "--password", password, *extra]


@pytest.mark.parametrize("server", ["x y", "sip.example.net;x", "sip.example.net\n[evil]", "-x.com", "a..b",
                                    "under_score.net", "[::1]", "host=1", "", "999.999.1.1"])
def test_trunk_add_bad_host(vp: Vpbx, server: str) -> None:
    vp.fails(*_trunk(server=server), needles=(f"server {server!r}",))


@pytest.mark.parametrize("port", ["0", "65536", "-1", "100000"])
def test_trunk_add_bad_port(vp: Vpbx, port: str) -> None:
    vp.fails(*_trunk("--port", port), needles=(f"port {port}",))


@pytest.mark.parametrize("value", ["u;x", "u\n[evil]", "u=x", "u#x", "u[x", "u]x", "u x", "#include x"])
def test_trunk_add_injection_in_login_name(vp: Vpbx, value: str) -> None:
    vp.fails(*_trunk(login=value), needles=("trunk login",))
    vp.fails(*_trunk(name=value), needles=("trunk name",))


@pytest.mark.parametrize("value", ["p;x", "p\n[evil]", "p\rx", "p=x", "p#x", "p[x", "p]x", "#include x"])
def test_trunk_add_injection_in_password(vp: Vpbx, value: str) -> None:
    vp.fails(*_trunk(password=value), needles=("trunk prov", "password"))


def test_trunk_add_duplicate_and_usage(vp: Vpbx) -> None:
    ok(vp(*_trunk()))
    vp.fails(*_trunk(), needles=("trunk prov", "already exists"))
    vp.usage("trunk", "add", "other", "--login", "u", "--password", "p")              # no --server
    vp.usage("trunk", "add", "other", "--server", "h", "--password", "p")             # no --login
    vp.usage("trunk", "add", "other", "--server", "h", "--login", "u")                # no --password
    vp.usage(*_trunk("--port", "abc", name="other"))
    vp.usage(*_trunk("--transport", "sctp", name="other"))


def test_trunk_remove_refused_while_a_number_uses_it(vp: Vpbx) -> None:
    ok(vp(*_trunk()))
    ok(vp("number", "add", KYIV, "--trunk", "prov"))
    ok(vp("number", "add", KYIV2, "--trunk", "prov"))
    vp.fails("trunk", "remove", "prov", needles=("trunk prov", KYIV, KYIV2))
    ok(vp("number", "set", KYIV, KYIV2, "--trunk", ""))
    ok(vp("trunk", "remove", "prov"))
    assert one_json(vp("trunk", "list", "--json")) == []


# ---- errors name the object being changed --------------------------------------------------------------------
@pytest.mark.parametrize("args, obj", [
    (("number", "set", KYIV, "--channels", "3"), KYIV),
    (("number", "set", KYIV, "--comment", "a;b"), KYIV),
    (("sip", "add", "carol", "--password", "short"), "carol"),
    (("sip", "add", "carol", "--password", "semi;colon1"), "carol"),
    (tuple(_trunk(server="x y")), "prov"),
    (tuple(_trunk("--port", "0")), "prov"),
    (tuple(_trunk(login="u;x")), "prov"),
], ids=["set-channels", "set-comment", "sip-short-password", "sip-password-injection", "trunk-host", "trunk-port",
        "trunk-login"])
def test_validation_errors_name_the_object(vp: Vpbx, args: tuple[str, ...], obj: str) -> None:
    ok(vp("number", "add", KYIV))
    vp.fails(*args, needles=(obj,))


# ---- JSON everywhere, usage errors, help ---------------------------------------------------------------------
@pytest.fixture
def populated(vp: Vpbx) -> Vpbx:
    ok(vp(*_trunk()))
    ok(vp("number", "add", KYIV, "--trunk", "prov"))
    ok(vp("sip", "add", "alice", "--caller-id", KYIV))
    return vp


@pytest.mark.parametrize("args, kind", [
    (("number", "add", KYIV2), dict),
    (("number", "list"), list),
    (("number", "show", KYIV), dict),
    (("number", "set", KYIV, "--channels", "5"), list),
    (("sip", "add", "bob"), dict),
    (("sip", "list"), list),
    (("sip", "show", "alice"), dict),
    (("sip", "passwd", "alice"), dict),
    (("trunk", "add", "t2", "--server", "h2", "--login", "u2", "--password", "Pw-22222"), dict),
    (("trunk", "list"), list),
    (("trunk", "show", "prov"), dict),
])
def test_json_is_exactly_one_document(populated: Vpbx, args: tuple[str, ...], kind: type) -> None:
    result = ok(populated(*args, "--json"))
    assert result.stderr == ""
    doc, end = json.JSONDecoder().raw_decode(result.stdout)
    assert result.stdout[end:].strip() == ""
    assert isinstance(doc, kind) and doc


def test_json_import_is_one_document(vp: Vpbx) -> None:
    csv_file = vp.tmp / "n.csv"
    csv_file.write_text(f"number\n{KYIV}\n")
    result = ok(vp("number", "import", csv_file, "--json"))
    assert result.stderr == "" and json.loads(result.stdout) == {"imported": 1}


@pytest.mark.parametrize("args", [
    ("nosuchcommand",),
    ("number", "add"),
    ("number", "add", KYIV, "--direction", "sideways"),
    ("number", "add", KYIV, "--channels", "four"),
    ("number", "add", KYIV, "--type", "fax"),
    ("number", "add", KYIV, "--bogus"),
    ("number", "show"),
    ("number", "remove"),
    ("number", "import"),
    ("sip", "show"),
    ("sip", "remove"),
    ("sip", "frobnicate"),
    ("trunk", "add", "x"),
    ("trunk", "show"),
    ("trunk", "remove"),
])
def test_usage_errors_exit_2(vp: Vpbx, args: tuple[str, ...]) -> None:
    vp.usage(*args)


@pytest.mark.parametrize("group", ["number", "sip", "trunk"])
def test_group_without_subcommand_exits_2_with_usage(vp: Vpbx, group: str) -> None:
    result = vp(group)
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: ") and result.stdout == ""


def _walk(cmd: click.Command, path: tuple[str, ...] = ()):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*path, name))


ALL_COMMANDS = list(_walk(main))


def test_command_tree_is_complete() -> None:
    paths = {" ".join(p) for p, _ in ALL_COMMANDS}
    assert paths >= {"", "init", "number", "number add", "number list", "number show", "number set", "number remove",
                     "number import", "sip", "sip add", "sip list", "sip show", "sip remove", "sip passwd",
                     "trunk", "trunk add", "trunk list", "trunk show", "trunk remove"}


@pytest.mark.parametrize("path, cmd", ALL_COMMANDS, ids=[" ".join(p) or "vpbx" for p, _ in ALL_COMMANDS])
def test_every_command_has_help(path: tuple[str, ...], cmd: click.Command) -> None:
    assert (cmd.help or "").strip(), f"`vpbx {' '.join(path)}` has no help text"
    result = ok(invoke([*path, "--help"]))
    assert result.stdout.startswith("Usage: ")
    first_help_line = cmd.help.strip().splitlines()[0]
    assert " ".join(first_help_line.split()) in " ".join(result.stdout.split())  # Click re-wraps the text
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            assert sub.get_short_help_str().strip(), f"`vpbx {' '.join((*path, name))}` has no short help"
