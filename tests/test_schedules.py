"""Business hours (issue 12): schedule texts, "open at this instant?" (every minute of a week, DST in Europe/Kyiv,
holidays, closed dates, 24:00), the `hours:` destination compiled into the pure model and decided by the clock the
machine is given, `vpbx call simulate --at`, and the `vpbx schedule` commands."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

from clitools import dump, ok
from vpbx.cli import main
from vpbx.dialplan import ScheduleNode, compile_flow, simulate, start, step
from vpbx.dialplan.model import Dtmf, ForwardNode, IvrNode, PlaybackFinished, VoicemailNode
from vpbx.domain import schedules as sch
from vpbx.domain.destinations import hours as hours_dest
from vpbx.domain.destinations import parse, parse_fallback
from vpbx.domain.errors import DestinationError, ValidationError
from vpbx.domain.records import Group, Ivr, Number, Schedule
from vpbx.domain.schedules import Hours, ZoneOffsets
from vpbx.services.flows import zone_offsets

KYIV = ZoneInfo("Europe/Kyiv")
UTC_ZONE = ZoneOffsets.fixed("UTC")
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)          # a Monday, 00:00 UTC
NUMBER = "+380441234567"


def ts(text: str, tz: ZoneInfo | None = None) -> float:
    """'2026-12-31 10:00' in `tz` (default UTC) -> epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=tz or UTC).timestamp()


def kyiv_hours(schedule: Schedule, around: str = "2026-12-31 12:00") -> Hours:
    zone = zone_offsets(schedule.tz, datetime.fromisoformat(around).replace(tzinfo=UTC))
    assert zone is not None
    return Hours.of(schedule, zone)


OFFICE = Schedule("office", "Europe/Kyiv", ("mon-fri 09:00-18:00",), closed=("2026-12-31",), holidays=("01-01",))


# ---- texts -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, days", [
    ("mon", (0,)), ("sun", (6,)), ("mon-fri", (0, 1, 2, 3, 4)), ("sat-sun", (5, 6)), ("fri-mon", (0, 4, 5, 6)),
    ("mon,wed,fri", (0, 2, 4)), ("mon-sun", tuple(range(7))), ("wed-wed", (2,)), ("mon,mon-tue", (0, 1)),
])
def test_days(text: str, days: tuple[int, ...]) -> None:
    assert sch.parse_days(text) == days
    assert sch.parse_days(sch.format_days(days)) == days


@pytest.mark.parametrize("days, text", [((0, 1, 2, 3, 4), "mon-fri"), ((0, 2), "mon,wed"), ((0, 1), "mon,tue"),
                                        ((0, 4, 5, 6), "mon,fri-sun"), (tuple(range(7)), "mon-sun")])
def test_days_canonical_text(days: tuple[int, ...], text: str) -> None:
    assert sch.format_days(days) == text


@pytest.mark.parametrize("text", ["", "Mon", "monday", "mon-", "-fri", "mon--fri", "mon,,wed", "mon wed", "mon\n",
                                  "mon-fri,", "xyz", "mon-fri-sat"])
def test_bad_days_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match=r"days .* are not valid; use mon"):
        sch.parse_days(text, "schedule office")


@pytest.mark.parametrize("text, ranges", [
    ("09:00-18:00", ((540, 1080),)), ("00:00-24:00", ((0, 1440),)), ("23:59-24:00", ((1439, 1440),)),
    ("09:00-13:00,14:00-18:00", ((540, 780), (840, 1080))),
])
def test_ranges(text: str, ranges: tuple[tuple[int, int], ...]) -> None:
    assert sch.parse_ranges(text) == ranges


@pytest.mark.parametrize("text", ["9:00-18:00", "09:00-18:0", "09:00-24:01", "24:00-24:00", "09:60-10:00",
                                  "09:00 - 18:00", "09:00-18:00,", "09:00-18:00\n", "09:00", "０９:00-18:00",
                                  "09:00-18:00;x", "25:00-26:00"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match=r"hours .* are not valid; use HH:MM-HH:MM"):
        sch.parse_ranges(text, "schedule office")


@pytest.mark.parametrize("text", ["18:00-09:00", "09:00-09:00"])
def test_empty_or_backwards_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match=f"schedule office: {text} does not end after it starts.*24:00"):
        sch.parse_ranges(text, "schedule office")


def test_check_canonicalises() -> None:
    s = sch.check(Schedule("office", "Europe/Kyiv", ("fri-mon 10:00-12:00", "tue,wed,thu 09:00-18:00"),
                           closed=("2027-01-02", "2026-12-31"), holidays=("12-25", "01-01")))
    assert s == Schedule("office", "Europe/Kyiv", ("mon,fri-sun 10:00-12:00", "tue-thu 09:00-18:00"),
                         closed=("2026-12-31", "2027-01-02"), holidays=("01-01", "12-25"))
    assert sch.open_entry("Mon-Fri", "09:00-18:00") == "mon-fri 09:00-18:00"


@pytest.mark.parametrize("schedule, needle", [
    (Schedule("office", "Europe/Kyiv", ()), "schedule office has no open hours"),
    (Schedule("office", "Europe/Kyiv", ("mon-fri 09:00-13:00", "mon 12:00-14:00")),
     "schedule office: mon 12:00-14:00 overlaps mon 09:00-13:00; give each day open hours that do not overlap"),
    (Schedule("office", "Europe/Kyiv", ("mon 09:00-13:00,12:59-14:00",)), "mon 12:59-14:00 overlaps mon 09:00-13:00"),
    (Schedule("office", "Europe/Kyiv", ("mon 09:00-13:00", "mon 09:00-13:00")), "overlaps"),
    (Schedule("office", "Europe/Kyiv", ("mon-fri  09:00-18:00",)), "open hours 'mon-fri  09:00-18:00' are not valid"),
    (Schedule("office", "Europe/Kyiv", ("mon 09:00-18:00",), closed=("2026-02-30",)), "closed date '2026-02-30'"),
    (Schedule("office", "Europe/Kyiv", ("mon 09:00-18:00",), closed=("2026-12-31", "2026-12-31")),
     "closed date 2026-12-31 is given twice"),
    (Schedule("office", "Europe/Kyiv", ("mon 09:00-18:00",), holidays=("13-01",)), "holiday '13-01'"),
    (Schedule("office", "Europe/Kyiv", ("mon 09:00-18:00",), holidays=("1-1",)), "holiday '1-1'"),
    (Schedule("office", "Europe/../../etc", ("mon 09:00-18:00",)), "time zone 'Europe/../../etc' is not a tz"),
    (Schedule("office", "Europe/Kyiv\n", ("mon 09:00-18:00",)), "time zone 'Europe/Kyiv\\n'"),
    (Schedule("of fice", "UTC", ("mon 09:00-18:00",)), "schedule name 'of fice' is not valid"),
    (Schedule("office", "UTC", ("mon 09:00-18:00",), holidays=("01-01", "12-25", "01-01")),
     "holiday 01-01 is given twice"),
])
def test_check_refuses(schedule: Schedule, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        sch.check(schedule)
    assert needle in str(info.value)


def test_adjacent_ranges_are_not_an_overlap() -> None:
    week = sch.week_of(("mon 09:00-13:00", "mon 13:00-18:00"))
    assert week[0] == ((540, 780), (780, 1080))


# ---- "open at this instant?" ---------------------------------------------------------------------------------------
WEEK = Schedule("week", "UTC", ("mon-fri 09:00-13:00,14:00-18:00", "sat 10:00-14:00", "sun 22:00-24:00",
                                "fri-mon 00:00-01:30", "wed 18:00-18:01"))


def reference_open(schedule: Schedule) -> list[list[bool]]:
    """The open minutes of each weekday, worked out the slow, obvious way."""
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    table = [[False] * 1440 for _ in names]
    for entry in schedule.open:
        days_text, ranges_text = entry.split(" ")
        days: set[int] = set()
        for part in days_text.split(","):
            a, _, b = part.partition("-")
            i = names.index(a)
            days.add(i)
            while b and names[i] != b:
                i = (i + 1) % 7
                days.add(i)
        for r in ranges_text.split(","):
            start, end = r.split("-")
            s = int(start[:2]) * 60 + int(start[3:])
            e = int(end[:2]) * 60 + int(end[3:])
            for d in days:
                for m in range(s, e):
                    table[d][m] = True
    return table


def test_every_minute_of_a_week_matches_the_reference() -> None:
    hours = Hours.of(WEEK, UTC_ZONE)
    ref = reference_open(WEEK)
    base = MONDAY.timestamp()
    opened = 0
    for minute in range(7 * 1440):
        t = base + minute * 60
        want = ref[minute // 1440][minute % 1440]
        assert hours.is_open(t) is want, (minute // 1440, minute % 1440, hours.explain(t))
        assert hours.is_open(t + 59.999) is want           # the whole minute alike
        opened += want
    assert opened == 5 * 480 + 240 + 120 + 4 * 90 + 1


def test_range_is_closed_at_its_end_and_24_00_ends_the_day() -> None:
    hours = Hours.of(Schedule("x", "UTC", ("mon 09:00-18:00", "tue 22:00-24:00")), UTC_ZONE)
    assert hours.is_open(ts("2026-11-30 17:59:59.999"))
    assert not hours.is_open(ts("2026-11-30 18:00"))
    assert not hours.is_open(ts("2026-11-30 08:59:59.999"))
    assert hours.is_open(ts("2026-11-30 09:00"))
    assert hours.is_open(ts("2026-12-01 23:59:59.999"))
    assert not hours.is_open(ts("2026-12-02 00:00"))          # Wednesday has no hours
    assert hours.explain(ts("2026-12-02 00:00")) == "closed at Wed 2026-12-02 00:00 UTC (no open hours on wed)"


def test_always_open_but_closed_dates_and_holidays() -> None:
    s = Schedule("x", "Europe/Kyiv", ("mon-sun 00:00-24:00",), closed=("2026-12-31",), holidays=("01-01", "02-29"))
    hours = kyiv_hours(s)
    assert hours.is_open(ts("2026-12-30 23:59:59", KYIV))
    for t in ("2026-12-31 00:00", "2026-12-31 12:00", "2026-12-31 23:59:59", "2027-01-01 00:00", "2027-01-01 23:59"):
        assert not hours.is_open(ts(t, KYIV)), t
    assert hours.is_open(ts("2027-01-02 00:00", KYIV))
    # a closed date is the local date: 22:30 UTC on the 30th is already the 31st in Kyiv (UTC+2)
    assert not hours.is_open(ts("2026-12-30 22:30"))
    assert hours.explain(ts("2026-12-31 10:00", KYIV)) == \
        "closed at Thu 2026-12-31 10:00 Europe/Kyiv (closed date 2026-12-31)"
    assert hours.explain(ts("2027-01-01 10:00", KYIV)) == "closed at Fri 2027-01-01 10:00 Europe/Kyiv (holiday 01-01)"


def test_holidays_recur_every_year_and_02_29_only_in_leap_years() -> None:
    s = Schedule("x", "UTC", ("mon-sun 00:00-24:00",), holidays=("01-01", "02-29"))
    hours = Hours.of(s, UTC_ZONE)
    for year in range(2026, 2040):
        assert not hours.is_open(ts(f"{year}-01-01 12:00"))
        assert hours.is_open(ts(f"{year}-01-02 12:00"))
        assert hours.is_open(ts(f"{year}-02-28 12:00")) and hours.is_open(ts(f"{year}-03-01 12:00"))
    assert not hours.is_open(ts("2028-02-29 12:00"))


def test_zone_offsets_before_and_after_the_window() -> None:
    zone = ZoneOffsets("X", ((1000, 7200), (2000, 10800)))
    assert [zone.offset(t) for t in (0, 999.9, 1000, 1999, 2000, 10**10)] == [7200, 7200, 7200, 7200, 10800, 10800]


# Europe/Kyiv in 2026: UTC+2 until Sun 2026-03-29 01:00 UTC (03:00 local -> 04:00 EEST, UTC+3), back to UTC+2 at Sun
# 2026-10-25 01:00 UTC (04:00 local -> 03:00).
SPRING = datetime(2026, 3, 29, 1, tzinfo=UTC)
AUTUMN = datetime(2026, 10, 25, 1, tzinfo=UTC)


@pytest.mark.parametrize("change, before, after", [(SPRING, 7200, 10800), (AUTUMN, 10800, 7200)])
def test_zone_offsets_of_kyiv_change_at_the_right_second(change: datetime, before: int, after: int) -> None:
    zone = zone_offsets("Europe/Kyiv", change - timedelta(days=1))
    assert zone is not None
    t = change.timestamp()
    assert zone.offset(t - 1) == before and zone.offset(t) == after
    assert (int(t), after) in zone.changes


@pytest.mark.parametrize("week_of", [SPRING - timedelta(days=6), AUTUMN - timedelta(days=6)])
def test_every_minute_of_a_dst_week_in_kyiv_matches_zoneinfo(week_of: datetime) -> None:
    s = Schedule("office", "Europe/Kyiv", ("mon-fri 09:00-18:00", "sun 02:30-04:30", "sat 00:00-24:00"))
    zone = zone_offsets("Europe/Kyiv", week_of)
    assert zone is not None
    hours = Hours.of(s, zone)
    ref = reference_open(s)
    start = week_of.replace(hour=0, minute=0).timestamp()
    for minute in range(8 * 1440):
        t = start + minute * 60
        local = datetime.fromtimestamp(t, KYIV)
        assert hours.is_open(t) is ref[local.weekday()][local.hour * 60 + local.minute], local
        assert hours.local(t) == local.replace(tzinfo=None)


def test_dst_days_in_kyiv() -> None:
    hours = kyiv_hours(Schedule("x", "Europe/Kyiv", ("mon-fri 09:00-18:00", "sun 03:00-04:00")),
                       around="2026-03-28 12:00")
    # Friday before the change: 09:00 local is 07:00 UTC; Monday after: 06:00 UTC
    assert not hours.is_open(ts("2026-03-27 06:59:59")) and hours.is_open(ts("2026-03-27 07:00"))
    assert not hours.is_open(ts("2026-03-30 05:59:59")) and hours.is_open(ts("2026-03-30 06:00"))
    assert hours.is_open(ts("2026-03-30 14:59:59")) and not hours.is_open(ts("2026-03-30 15:00"))
    # the Sunday of the change has no 03:00-04:00: never open that day
    day = datetime(2026, 3, 28, 22, tzinfo=UTC).timestamp()        # 00:00 local (UTC+2)
    assert not any(hours.is_open(day + m * 60) for m in range(23 * 60))
    # the Sunday clocks go back has 03:00-04:00 twice: open for two hours
    autumn = kyiv_hours(Schedule("x", "Europe/Kyiv", ("sun 03:00-04:00",)), around="2026-10-24 12:00")
    day = datetime(2026, 10, 24, 21, tzinfo=UTC).timestamp()        # 00:00 local (UTC+3)
    assert sum(autumn.is_open(day + m * 60) for m in range(25 * 60)) == 120


# ---- the hours: destination ----------------------------------------------------------------------------------------
def test_hours_destination_parts_and_names() -> None:
    d = parse("hours:office?open=ivr:main&closed=voicemail")
    assert d.schedule == "office"
    assert d.branches == (parse("ivr:main"), parse("voicemail"))
    assert d.names() == (d, parse("ivr:main"), parse("voicemail"))
    assert hours_dest("office", "ivr:main", parse("voicemail")) == d
    assert parse("sip:alice").branches == () and parse("sip:alice").schedule is None


def test_hours_branch_problems_name_the_branch() -> None:
    with pytest.raises(DestinationError, match="the closed branch: '-x' is not a SIP login"):
        parse("hours:office?open=ivr:main&closed=sip:-x")
    with pytest.raises(DestinationError, match="a branch is another schedule route"):
        parse("hours:office?open=ivr:main&closed=hours:x?open=hangup&closed=hangup")
    with pytest.raises(DestinationError, match="write it as %26 in a SIP URI"):
        parse("hours:o?open=uri:sip:a&b@h&closed=hangup")
    assert str(parse("hours:o?open=uri:sip:a%26b@h&closed=hangup")) == "hours:o?open=uri:sip:a%26b@h&closed=hangup"


def test_hours_fallback_chooses_between_fallbacks() -> None:
    assert parse_fallback("hours:office?open=voicemail&closed=play:closed").schedule == "office"
    with pytest.raises(DestinationError, match="a fallback is one of hangup, play:PROMPT or voicemail"):
        parse_fallback("hours:office?open=ivr:main&closed=play:closed")


# ---- compiled and decided by the machine's clock ---------------------------------------------------------------
ROUTE = "hours:office?open=ivr:main&closed=voicemail"
IVRS = {"main": Ivr("main", "menu", (("1", "sip:alice"), ("2", "hours:office?open=group:sales&closed=voicemail")))}
GROUPS = {"sales": Group("sales", ("sip:alice",))}
ZONES = {"Europe/Kyiv": zone_offsets("Europe/Kyiv", datetime(2026, 12, 30, tzinfo=UTC))}


def flow(route: str = ROUTE, schedules: dict[str, Schedule] | None = None, **changes: object):
    number = Number(NUMBER, route=route, vm_emails=("owner@example.com",), **changes)  # type: ignore[arg-type]
    return compile_flow(number, dict(GROUPS), dict(IVRS), {"alice"}, {},
                        schedules={"office": OFFICE} if schedules is None else schedules, zones=ZONES)


def test_compiles_to_a_schedule_node() -> None:
    f = flow()
    node = f.node(ROUTE)
    assert isinstance(node, ScheduleNode)
    assert (node.open, node.closed, node.hours.name, node.hours.tz) == ("ivr:main", "voicemail", "office",
                                                                         "Europe/Kyiv")
    assert f.route_start == ROUTE
    assert isinstance(f.node("ivr:main"), IvrNode) and isinstance(f.node("voicemail"), VoicemailNode)
    assert isinstance(f.node("group:sales"), ForwardNode)          # reached through IVR option 2's schedule


@pytest.mark.parametrize("route, schedules, needle", [
    ("hours:nope?open=ivr:main&closed=voicemail", None,
     "route: there is no schedule 'nope'; create it with `vpbx schedule add nope"),
    ("hours:office?open=ivr:gone&closed=voicemail", None, "route (open): there is no IVR 'gone'"),
    ("hours:office?open=ivr:main&closed=sip:bob", None, "route (closed): there is no SIP account 'bob'"),
    (ROUTE, {"office": Schedule("office", "Mars/Olympus", ("mon 09:00-18:00",))},
     "time zone 'Mars/Olympus' is not known on this machine"),
    (ROUTE, {"office": Schedule("office", "Europe/Kyiv", ("mon 18:00-09:00",))}, "does not end after it starts"),
])
def test_compile_refuses(route: str, schedules: dict[str, Schedule] | None, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        flow(route, schedules)
    assert str(info.value).startswith(f"number {NUMBER}: ") and needle in str(info.value), str(info.value)


def test_fallback_by_hours() -> None:
    f = flow("sip:alice", fallback="hours:office?open=voicemail&closed=play:closed")
    forward = f.node("sip:alice")
    assert isinstance(forward, ForwardNode) and isinstance(f.node(forward.fallback), ScheduleNode)
    with pytest.raises(ValidationError, match="a schedule route used as the fallback branches to hangup, play:PROMPT"):
        flow("sip:alice", fallback="hours:office?open=ivr:main&closed=play:closed")


def test_silent_ivr_loop_through_a_schedule_is_refused() -> None:
    ivrs = {"a": Ivr("a", "", (("1", "hours:office?open=ivr:b&closed=hangup"),)), "b": Ivr("b", "", (("1", "ivr:a"),))}
    with pytest.raises(ValidationError, match="loop"):
        compile_flow(Number(NUMBER, route="ivr:a"), {}, ivrs, set(), schedules={"office": OFFICE}, zones=ZONES)


@pytest.mark.parametrize("local, expect", [
    ("2026-12-30 17:59:59", "ivr:main"), ("2026-12-30 18:00:00", "voicemail"),      # closing time
    ("2026-12-30 08:59:59", "voicemail"), ("2026-12-30 09:00:00", "ivr:main"),      # opening time
    ("2026-12-31 10:00:00", "voicemail"),                                           # a closed date
    ("2027-01-01 10:00:00", "voicemail"), ("2027-01-02 10:00:00", "voicemail"),     # holiday, Saturday
])
def test_start_decides_by_the_clock_it_is_given(local: str, expect: str) -> None:
    f = flow()
    state, _actions = start(f, "c", "+380671112233", 0, now=ts(local, KYIV))
    assert state.node == expect
    assert state.decisions == ((ROUTE, expect == "ivr:main"),)


def test_an_ivr_option_decides_when_the_key_is_pressed() -> None:
    f = flow()
    t0 = ts("2026-12-30 17:59:50", KYIV)
    state, _ = start(f, "c", "+380671112233", 0, now=t0)
    assert state.node == "ivr:main"
    state, _ = step(state, PlaybackFinished(state.playback_id or ""), now=t0 + 1)
    assert state.decisions == ()
    before, _ = step(state, Dtmf("2"), now=t0 + 9)          # 17:59:59: still open -> the sales group rings
    assert before.node == "group:sales" and before.decisions == (("hours:office?open=group:sales&closed=voicemail",
                                                                   True),)
    after, _ = step(state, Dtmf("2"), now=t0 + 10)          # 18:00:00: closed -> voicemail
    assert after.node == "voicemail" and after.decisions == (("hours:office?open=group:sales&closed=voicemail",
                                                              False),)
    nothing, actions = step(after, Dtmf("9"), now=t0 + 11)  # an ignored event changes nothing
    assert nothing is after and actions == []


def test_simulate_shows_the_decision() -> None:
    lines = simulate(flow(), "+380671112233", at=ts("2026-12-31 10:00", KYIV))
    assert lines[0] == ("  0. call from +380671112233 to +380441234567 -> schedule office closed at Thu 2026-12-31 "
                        "10:00 Europe/Kyiv (closed date 2026-12-31) -> voicemail; answer; play sound:vpbx/vm-intro "
                        "[sim-pb-1]")
    assert lines[-1] == "end: voicemail, reached voicemail"
    lines = simulate(flow(), "+380671112233", dtmf="2", at=ts("2026-12-30 17:59:58", KYIV))
    assert "schedule office open at Wed 2026-12-30 17:59 Europe/Kyiv (wed 09:00-18:00) -> ivr:main" in lines[0]
    assert any("caller presses 2 -> schedule office closed at Wed 2026-12-30 18:00 Europe/Kyiv (outside wed "
               "09:00-18:00) -> voicemail" in line for line in lines), lines


# ---- the command line ------------------------------------------------------------------------------------------
class Vpbx:
    def __init__(self, tmp: Path) -> None:
        self.cfg = tmp / "vpbx.toml"
        self.db = tmp / "vpbx.db"

    def __call__(self, *args: object) -> Result:
        return CliRunner().invoke(main, ["--config", str(self.cfg), *map(str, args)],
                                  env={"VPBX_CONFIG": None, "VPBX_DB": None, "COLUMNS": "250"})

    def json(self, *args: object):
        result = ok(self(*args, "--json"))
        assert result.stderr == ""
        return json.loads(result.stdout)

    def lines(self, *args: object) -> list[str]:
        return ok(self(*args)).stdout.splitlines()

    def fails(self, *args: object, needles: tuple[str, ...] = ()) -> str:
        before = dump(self.db)
        result = self(*args)
        assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
        assert isinstance(result.exception, SystemExit), result.exception
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])
        assert result.stdout == ""
        assert dump(self.db) == before, "a refused command changed the database"
        return lines[0]


@pytest.fixture
def vp(tmp_path: Path) -> Vpbx:
    v = Vpbx(tmp_path)
    ok(v("init", "--dir", tmp_path, "--sounds-dir", tmp_path / "sounds"))
    ok(v("number", "add", NUMBER))
    ok(v("sip", "add", "alice", "--password", "secretpass1"))
    wav = tmp_path / "tone.wav"                 # the prompts the routes name must be installed (issue 13 item 5)
    sf.write(wav, np.zeros(800), 8000, subtype="PCM_16")
    for prompt in ("menu", "closed"):
        ok(v("prompt", "add", prompt, wav))
    ok(v("ivr", "add", "main", "--prompt", "menu", "--option", "1=sip:alice"))
    ok(v("group", "add", "sales", "--member", "sip:alice"))
    return v


OFFICE_ARGS = ("schedule", "add", "office", "--tz", "Europe/Kyiv", "--open", "Mon-Fri", "09:00-18:00",
               "--open", "sat", "10:00-13:00,14:00-16:00", "--closed", "2026-12-31", "--holiday", "01-01")


def test_schedule_add_list_show_set_remove(vp: Vpbx) -> None:
    added = vp.json(*OFFICE_ARGS)
    assert added == {"name": "office", "tz": "Europe/Kyiv", "open": ["mon-fri 09:00-18:00",
                                                                     "sat 10:00-13:00,14:00-16:00"],
                     "closed": ["2026-12-31"], "holidays": ["01-01"]}
    listed = vp.json("schedule", "list")
    assert [s["name"] for s in listed] == ["office"] and listed[0]["now"].startswith(("open at ", "closed at "))
    shown = vp.json("schedule", "show", "office")
    assert shown["used_by"] == [] and shown["open"] == added["open"] and "Europe/Kyiv" in shown["now"]
    assert "office" in ok(vp("schedule", "list")).stdout

    changed = vp.json("schedule", "set", "office", "--open", "mon-sun", "08:00-20:00", "--closed", "2027-01-07",
                      "--closed", "2026-12-31")
    assert changed["open"] == ["mon-sun 08:00-20:00"] and changed["closed"] == ["2026-12-31", "2027-01-07"]
    assert changed["holidays"] == ["01-01"] and changed["tz"] == "Europe/Kyiv"
    changed = vp.json("schedule", "set", "office", "--closed", "none", "--holiday", "none", "--tz", "UTC")
    assert (changed["closed"], changed["holidays"], changed["tz"]) == ([], [], "UTC")
    assert vp.lines("schedule", "remove", "office") == ["Removed schedule office"]
    assert vp.json("schedule", "list") == []


@pytest.mark.parametrize("args, needles", [
    (("--tz", "Europe/Kyivv", "--open", "mon", "09:00-18:00"), ("schedule office: time zone 'Europe/Kyivv' is not in "
                                                               "the tz database; use one like Europe/Kyiv",)),
    (("--tz", "localtime", "--open", "mon", "09:00-18:00"), ("time zone 'localtime' is not in the tz database",)),
    (("--tz", "../../etc/passwd", "--open", "mon", "09:00-18:00"), ("is not a tz database name",)),
    (("--tz", "UTC"), ("schedule office has no open hours", "--open")),
    (("--tz", "UTC", "--open", "mon-fri", "09:00-13:00", "--open", "mon", "12:00-14:00"),
     ("schedule office: mon 12:00-14:00 overlaps mon 09:00-13:00",)),
    (("--tz", "UTC", "--open", "mon", "10:00-10:00"), ("schedule office: 10:00-10:00 does not end after it starts",)),
    (("--tz", "UTC", "--open", "mon", "22:00-02:00"), ("write a night as 22:00-24:00 and 00:00-02:00",)),
    (("--tz", "UTC", "--open", "mo", "09:00-18:00"), ("schedule office: days 'mo' are not valid",)),
    (("--tz", "UTC", "--open", "mon", "9-18"), ("schedule office: hours '9-18' are not valid",)),
    (("--tz", "UTC", "--open", "mon", "09:00-18:00", "--closed", "31.12.2026"), ("closed date '31.12.2026'",)),
    (("--tz", "UTC", "--open", "mon", "09:00-18:00", "--holiday", "02-30"), ("holiday '02-30'",)),
])
def test_schedule_add_refuses(vp: Vpbx, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    vp.fails("schedule", "add", "office", *args, needles=needles)


def test_schedule_add_refuses_a_bad_name_and_a_duplicate(vp: Vpbx) -> None:
    vp.fails("schedule", "add", "of\nfice", "--tz", "UTC", "--open", "mon", "09:00-18:00",
             needles=("schedule name 'of\\nfice' is not valid",))
    ok(vp(*OFFICE_ARGS))
    vp.fails(*OFFICE_ARGS, needles=("schedule office already exists",))
    vp.fails("schedule", "set", "office", needles=("schedule office: nothing to change",))
    vp.fails("schedule", "set", "nope", "--tz", "UTC", needles=("schedule nope not found",))
    vp.fails("schedule", "set", "office", "--open", "mon", "18:00-09:00", needles=("does not end after it starts",))
    vp.fails("schedule", "show", "nope", needles=("schedule nope not found",))


def test_routes_branch_on_a_schedule_and_keep_it(vp: Vpbx) -> None:
    vp.fails("number", "route", NUMBER, ROUTE, needles=("route: there is no schedule 'office'",))
    ok(vp(*OFFICE_ARGS))
    vp.fails("number", "route", NUMBER, "hours:office?open=ivr:nope&closed=voicemail",
             needles=("route (open): there is no IVR 'nope'",))
    vp.fails("number", "route", NUMBER, "hours:office?open=ivr:main", needles=("is not a schedule route like",))
    ok(vp("number", "route", NUMBER, ROUTE, "--vm-email", "owner@example.com"))
    assert vp.json("number", "show", NUMBER)["route"] == ROUTE
    vp.fails("schedule", "remove", "office",
             needles=(f"schedule office is still used by number {NUMBER}; route those elsewhere first",))
    vp.fails("ivr", "remove", "main", needles=(f"IVR main is still used by number {NUMBER}",))
    assert vp.json("schedule", "show", "office")["used_by"] == [f"number {NUMBER}"]

    ok(vp("ivr", "add", "front", "--prompt", "menu", "--option", "1=hours:office?open=group:sales&closed=hangup"))
    vp.fails("group", "remove", "sales", needles=("group sales is still used by IVR front",))
    ok(vp("number", "route", NUMBER, "sip:alice", "--fallback", "hours:office?open=voicemail&closed=play:closed"))
    vp.fails("number", "route", NUMBER, "sip:alice", "--fallback", "hours:office?open=ivr:main&closed=hangup",
             needles=("a fallback is one of hangup, play:PROMPT or voicemail",))
    assert vp.json("schedule", "show", "office")["used_by"] == ["IVR front", f"number {NUMBER}"]
    vp.fails("schedule", "remove", "office", needles=("still used by IVR front, number",))
    vp.fails("schedule", "set", "office", "--tz", "Nowhere/City", needles=("time zone 'Nowhere/City'",))

    ok(vp("number", "route", NUMBER, "hangup", "--fallback", "hangup"))
    ok(vp("ivr", "remove", "front"))
    assert vp.lines("schedule", "remove", "office") == ["Removed schedule office"]


def test_call_simulate_at(vp: Vpbx) -> None:
    ok(vp(*OFFICE_ARGS))
    ok(vp("number", "route", NUMBER, ROUTE, "--vm-email", "owner@example.com"))
    closed = vp.lines("call", "simulate", NUMBER, "--at", "2026-12-31 10:00")
    assert closed[0].endswith("-> schedule office closed at Thu 2026-12-31 10:00 Europe/Kyiv (closed date "
                              "2026-12-31) -> voicemail; answer; play sound:vpbx/vm-intro [sim-pb-1]"), closed
    assert closed[-1] == "end: voicemail, reached voicemail"
    # both sides of closing time, in the schedule's zone and as instants with an offset
    for at, reached in (("2026-12-30 17:59", "sip:alice"), ("2026-12-30 18:00", "voicemail"),
                        ("2026-12-30T15:59:59Z", "sip:alice"), ("2026-12-30T16:00:00Z", "voicemail"),
                        ("2026-12-30T17:59:59+02:00", "sip:alice"), ("2026-12-30 18:00:00", "voicemail")):
        lines = vp.lines("call", "simulate", NUMBER, "--at", at, "--dtmf", "1")
        assert lines[-1].endswith(f"reached {reached}"), (at, lines)
    assert vp.json("call", "simulate", NUMBER, "--at", "2027-01-01 12:00")[-1] == "end: voicemail, reached voicemail"
    # the Sunday clocks go forward has no 03:30 in Kyiv
    vp.fails("call", "simulate", NUMBER, "--at", "2027-03-28 03:30",
             needles=("there is no such time in Europe/Kyiv",))
    for bad in ("2026-12-31", "31.12.2026 10:00", "2026-12-31 10:00\n", "2026-13-01 10:00", "now"):
        vp.fails("call", "simulate", NUMBER, "--at", bad, needles=("--at", "is not a time; use YYYY-MM-DD HH:MM"))
    ok(vp("schedule", "add", "usa", "--tz", "America/New_York", "--open", "mon-fri", "09:00-17:00"))
    ok(vp("ivr", "add", "two", "--prompt", "menu", "--option", "1=hours:usa?open=sip:alice&closed=voicemail"))
    ok(vp("number", "route", NUMBER, "hours:office?open=ivr:two&closed=voicemail"))
    vp.fails("call", "simulate", NUMBER, "--at", "2026-12-30 10:00",
             needles=("uses schedules in several time zones (America/New_York, Europe/Kyiv)", "with its offset"))
    assert vp.lines("call", "simulate", NUMBER, "--at", "2026-12-30T10:00+02:00", "--dtmf", "1")[-1] \
        == "end: voicemail, reached voicemail"          # 03:00 in New York: closed there
    assert vp.lines("call", "simulate", NUMBER, "--at", "2026-12-30T17:00+02:00", "--dtmf", "1")[-1] \
        == "end: answered, reached sip:alice"           # 10:00 in New York


def test_migration_makes_the_table(tmp_path: Path) -> None:
    from vpbx.storage.store import Store

    with Store.open(tmp_path / "x.db") as store:
        assert "m011_schedules" in store.schema_version()
        store.schedules.add(sch.check(OFFICE))
        assert store.schedules.get("office") == sch.check(OFFICE)
        assert store.schedules.all() == [sch.check(OFFICE)]


def test_days_of_the_week_are_right() -> None:
    assert MONDAY.weekday() == 0 and date(1970, 1, 1).weekday() == 3
