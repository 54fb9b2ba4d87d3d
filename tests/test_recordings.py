"""Call recording, the storage / service / CLI half (issue 12): who asks for it (numbers, SIP accounts, accounts), the
pure decision (vpbx.domain.recording), the Flow fields the engine reads, keeping the audio the engine fetched
(vpbx.services.recordings.keep), list / export / remove, retention (purge, in `vpbx billing run`), and the commands.
No Asterisk: the audio is a real WAV made here (numpy + soundfile).
"""
from __future__ import annotations

import io
import itertools
import json
import os
import stat
import struct
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

from clitools import dump, ok
from vpbx.cli import main
from vpbx.config import Config, ConfigError, RecordingSettings, load_config, new_config, write_config
from vpbx.dialplan import compile_flow
from vpbx.dialplan.model import PlayNode
from vpbx.dialplan.testing import SAMPLE_GROUPS, SAMPLE_IVRS, SAMPLE_LOGINS, sample_number
from vpbx.domain.errors import ConflictError, NotFoundError, ValidationError
from vpbx.domain.recording import recording_for
from vpbx.domain.records import Account, Number, SipAccount
from vpbx.services import calls as calls_service
from vpbx.services import lifecycle, numbers, prompts, recordings, sip_accounts
from vpbx.services.flows import load_flow
from vpbx.storage.store import Store

KYIV = "+380441234567"
KYIV2 = "+380442718459"
CALLER = "+380501112233"
RATE = 8000
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
CLEAN_ENV = {"VPBX_CONFIG": None, "VPBX_DB": None, "COLUMNS": "250"}


# ---- helpers --------------------------------------------------------------------------------------------------------
def wav(seconds: float, freq: float = 440.0) -> bytes:
    """A real WAV as Asterisk's `wav` format writes it: PCM 16-bit mono 8 kHz, a tone of `freq` Hz."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = io.BytesIO()
    sf.write(out, (0.3 * np.sin(2 * np.pi * freq * t)).astype("float64"), RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def unfinished_header(audio: bytes) -> bytes:
    """`audio` as a WAV Asterisk could not close (killed mid-call): RIFF and data sizes never written (0)."""
    data = audio.index(b"data")
    return audio[:4] + b"\0\0\0\0" + audio[8:data + 4] + b"\0\0\0\0" + audio[data + 8:]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds")


class World:
    """A store, a config whose sounds dir has the prompt `rec-notice`, numbers KYIV and KYIV2 and SIP account alice."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "v.db"
        self.cfg: Config = replace(new_config(tmp, asterisk_sounds_dir=tmp / "sounds"), db=self.db)
        prompts.install(self.cfg.asterisk_sounds_dir, "en", "rec-notice", wav(0.5))
        prompts.install(self.cfg.asterisk_sounds_dir, "ru", "rec-notice-ru", wav(0.5))
        self.store = Store.open(self.db)
        numbers.add(self.store, numbers.build(KYIV, direction="both"))
        numbers.add(self.store, numbers.build(KYIV2))
        sip_accounts.add(self.store, self.cfg, "alice", caller_id=KYIV)
        self.rec_dir = tmp / "recordings"

    def call(self, call_id: str, number: str = KYIV, started: datetime = T0, answered: bool = True) -> str:
        self.store.calls.add(call_id, number, CALLER, started_at=iso(started))
        self.store.calls.finish(call_id, ended_at=iso(started + timedelta(minutes=2)),
                                answered_at=iso(started + timedelta(seconds=5)) if answered else None,
                                disposition="answered" if answered else "missed")
        return call_id

    def keep(self, call_id: str, audio: bytes, **kw: object) -> recordings.Recording:
        return recordings.keep(self.store, self.cfg, call_id, audio, **kw)  # type: ignore[arg-type]

    def dump(self) -> str:
        return dump(self.db)


@pytest.fixture
def w(tmp_path: Path):
    world = World(tmp_path)
    try:
        yield world
    finally:
        world.store.close()


def refused(w: World, exc: type[Exception], match: str, fn, *args, **kwargs) -> None:
    """`fn` raises `exc` and changes nothing: not the database, not one file under the recordings dir."""
    before, files = w.dump(), {p: p.read_bytes() for p in files_under(w.rec_dir)}
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    assert w.dump() == before, "a refused change wrote to the database"
    assert {p: p.read_bytes() for p in files_under(w.rec_dir)} == files, "a refused change touched a recording"


# ---- the decision (pure) --------------------------------------------------------------------------------------------
PARTY_STATES = ("absent", "off", "off+prompt", "on", "on+prompt")


def _party(kind: str, state: str) -> Number | Account | SipAccount | None:
    if state == "absent":
        return None
    record, prompt = state.startswith("on"), f"{kind}-prompt" if state.endswith("+prompt") else None
    if kind == "number":
        return Number(KYIV, record_calls=record, record_prompt=prompt)
    if kind == "sip":
        return SipAccount("alice", "pw", record_calls=record, record_prompt=prompt)
    return Account("acme", "a@example.com", record_calls=record, record_prompt=prompt)


@pytest.mark.parametrize(("n", "s", "a"), list(itertools.product(PARTY_STATES, repeat=3)))
def test_recording_for_every_combination(n: str, s: str, a: str) -> None:
    """Recorded when any party asks; the prompt is the first, in the order number, SIP account, account, of a party
    that asks for recording and names one (a prompt kept on a party that does not record is never played)."""
    number, sip, account = _party("number", n), _party("sip", s), _party("account", a)
    record, prompt = recording_for(number, account, sip)   # type: ignore[arg-type]
    asking = [(kind, state) for kind, state in (("number", n), ("sip", s), ("account", a)) if state.startswith("on")]
    assert record == bool(asking)
    expected = next((f"{kind}-prompt" for kind, state in asking if state == "on+prompt"), None)
    assert prompt == expected
    if not record:
        assert prompt is None


def test_recording_for_named_cases() -> None:
    on = Number(KYIV, record_calls=True)
    assert recording_for(None, None, None) == (False, None)
    assert recording_for(Number(KYIV), None, None) == (False, None)
    assert recording_for(on, None, None) == (True, None)
    assert recording_for(replace(on, record_prompt="n"), Account("a", "a@b.cd", record_calls=True, record_prompt="a"),
                         SipAccount("s", "p", record_calls=True, record_prompt="s")) == (True, "n")
    assert recording_for(on, Account("a", "a@b.cd", record_calls=True, record_prompt="a"),
                         SipAccount("s", "p", record_calls=True, record_prompt="s")) == (True, "s")
    # the account records; the number keeps a prompt but does not record: the account's prompt is played
    assert recording_for(Number(KYIV, record_prompt="n"), Account("a", "a@b.cd", record_calls=True,
                                                                  record_prompt="a"), None) == (True, "a")


# ---- names ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("call_id", "name"), [
    ("1700000000.42", "rec-1700000000.42"),
    ("1700000000.42-xab12cd34", "rec-1700000000.42-xab12cd34"),
    ("pbx1-1700000000.42", "rec-pbx1-1700000000.42"),       # Asterisk with a systemname
])
def test_recording_name_of_a_call_id(call_id: str, name: str) -> None:
    assert recordings.recording_name(call_id) == name
    assert recordings.recording_name(call_id) == recordings.recording_name(call_id)


@pytest.mark.parametrize("call_id", ["../etc/passwd", "a/b", "1700000000.42\n", "-rf", ".hidden", "1..2", "x" * 121,
                                     "é", "a b", "a\0b", "1700000000.42;", "\udcff"])
def test_an_unsafe_call_id_is_hashed_into_a_plain_file_name(call_id: str) -> None:
    name = recordings.recording_name(call_id)
    assert name.startswith("rec_") and len(name) == 44 and name[4:].isalnum()
    assert name == recordings.recording_name(call_id)


def test_recording_names_never_collide() -> None:
    ids = ["1.2", "1.2\n", "1.20", "h" + "0" * 40, "rec_x", "x" * 120, "x" * 121, "x" * 122, "a/b", "a_b", "a-b"]
    names = [recordings.recording_name(i) for i in ids]
    assert len(set(names)) == len(ids)


@pytest.mark.parametrize("bad", ["", None, 42])
def test_recording_name_refuses_no_call_id(bad: object) -> None:
    with pytest.raises(ValidationError, match="call id"):
        recordings.recording_name(bad)  # type: ignore[arg-type]


# ---- the Flow carries it --------------------------------------------------------------------------------------------
def _compile(number: Number, **kw: object):
    return compile_flow(number, dict(SAMPLE_GROUPS), dict(SAMPLE_IVRS), set(SAMPLE_LOGINS), **kw)  # type: ignore


def test_compile_flow_is_not_recording_by_default() -> None:
    flow = _compile(sample_number(route="sip:alice"))
    assert (flow.record, flow.record_prompt) == (False, None)


def test_compile_flow_sets_the_recording_fields() -> None:
    plain = _compile(sample_number(route="sip:alice"))
    flow = _compile(sample_number(route="sip:alice"), record=True, record_prompt="rec-notice")
    assert (flow.record, flow.record_prompt) == (True, "rec-notice")
    # the routing is the same, after the announcement, which is the call's first node
    announce = flow.node(flow.start)
    assert isinstance(announce, PlayNode) and announce.media == "sound:vpbx/rec-notice" and announce.next == plain.start
    assert {k: v for k, v in flow.nodes.items() if k != flow.start} == dict(plain.nodes)
    assert _compile(sample_number(route="sip:alice"), record=True).start == plain.start   # no prompt: no node
    assert _compile(sample_number(route="sip:alice"), record=True).record_prompt is None
    # not recording: no announcement, whatever was passed
    assert (lambda f: (f.record, f.record_prompt))(
        _compile(sample_number(route="sip:alice"), record_prompt="rec-notice")) == (False, None)
    unavailable = _compile(sample_number(), record=True)      # no route: the "unavailable" flow, still marked
    assert unavailable.record


@pytest.mark.parametrize("bad", ["../x", "a b", "", "x" * 65, "sound:foo"])
def test_compile_flow_refuses_a_bad_record_prompt(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"number \+380441234567: record prompt"):
        _compile(sample_number(route="sip:alice"), record=True, record_prompt=bad)


def test_load_flow_decides_from_number_account_and_sip_account(w: World) -> None:
    s = w.store
    n = s.numbers.get(KYIV)
    assert (load_flow(s, n).record, load_flow(s, n).record_prompt) == (False, None)

    numbers.update(s, [KYIV], record_calls=True, cfg=w.cfg)
    flow = load_flow(s, s.numbers.get(KYIV))
    assert (flow.record, flow.record_prompt) == (True, None)

    numbers.update(s, [KYIV], record_calls=False, record_prompt="rec-notice", cfg=w.cfg)
    sip = sip_accounts.update(s, w.cfg, "alice", record_calls=True, record_prompt="rec-notice-ru")
    n = s.numbers.get(KYIV)
    assert (load_flow(s, n).record, load_flow(s, n).record_prompt) == (False, None)     # inbound: no SIP account
    flow = load_flow(s, n, sip_account=sip)                                               # outbound from alice
    assert (flow.record, flow.record_prompt) == (True, "rec-notice-ru")
    numbers.update(s, [KYIV], record_calls=True, cfg=w.cfg)
    flow = load_flow(s, s.numbers.get(KYIV), sip_account=sip)
    assert (flow.record, flow.record_prompt) == (True, "rec-notice")                       # the number's first


def test_load_flow_records_an_accounts_numbers(w: World) -> None:
    s = w.store
    lifecycle.add_account(s, "acme", "boss@acme.example")
    s.numbers.update([KYIV2], account="acme", status="active")
    lifecycle.update_account(s, "acme", record_calls=True, record_prompt="rec-notice", cfg=w.cfg)
    flow = load_flow(s, s.numbers.get(KYIV2))
    assert (flow.record, flow.record_prompt) == (True, "rec-notice")
    assert not load_flow(s, s.numbers.get(KYIV)).record          # the install's own number: not the account's


# ---- settings: checked at write time --------------------------------------------------------------------------------
def test_settings_are_stored_per_number_sip_account_and_account(w: World) -> None:
    s = w.store
    updated = numbers.update(s, [KYIV, KYIV2], record_calls=True, record_prompt="rec-notice", cfg=w.cfg)
    assert [(n.record_calls, n.record_prompt) for n in updated] == [(True, "rec-notice")] * 2
    assert (s.numbers.get(KYIV).record_calls, s.numbers.get(KYIV).record_prompt) == (True, "rec-notice")
    numbers.update(s, [KYIV], record_prompt="none", cfg=w.cfg)
    assert (s.numbers.get(KYIV).record_calls, s.numbers.get(KYIV).record_prompt) == (True, None)
    numbers.update(s, [KYIV], record_calls=False, cfg=w.cfg)
    assert s.numbers.get(KYIV).record_calls is False

    sip_accounts.update(s, w.cfg, "alice", record_calls=True, record_prompt="rec-notice-ru")   # any language
    alice = s.sip_accounts.get("alice")
    assert (alice.record_calls, alice.record_prompt) == (True, "rec-notice-ru")

    lifecycle.add_account(s, "acme", "boss@acme.example")
    lifecycle.update_account(s, "acme", record_calls=True, record_prompt="goodbye", cfg=w.cfg)   # a built-in
    acme = s.accounts.get("acme")
    assert (acme.record_calls, acme.record_prompt) == (True, "goodbye")


def test_a_record_prompt_must_be_installed_and_valid(w: World) -> None:
    s = w.store
    lifecycle.add_account(s, "acme", "boss@acme.example")
    for fn, args, kwargs in (
        (numbers.update, (s, [KYIV]), {"cfg": w.cfg}),
        (sip_accounts.update, (s, w.cfg, "alice"), {}),
        (lifecycle.update_account, (s, "acme"), {"cfg": w.cfg}),
    ):
        refused(w, NotFoundError, r"record prompt nosuch is not installed; upload it with `vpbx prompt add nosuch",
                fn, *args, record_calls=True, record_prompt="nosuch", **kwargs)
        refused(w, ValidationError, r"record prompt: prompt name '\.\./x' is not valid", fn, *args,
                record_prompt="../x", **kwargs)
    refused(w, ValueError, "needs the config", numbers.update, s, [KYIV], record_calls=True)
    refused(w, ValueError, "needs the config", lifecycle.update_account, s, "acme", record_calls=True)


# ---- keep -----------------------------------------------------------------------------------------------------------
def test_keep_stores_the_audio_0600_and_one_row(w: World) -> None:
    w.call("1700000000.42")
    audio = wav(3.0)
    old_umask = os.umask(0)
    try:
        rec = w.keep("1700000000.42", audio)
    finally:
        os.umask(old_umask)
    path = Path(rec.path)
    assert path.parent == w.rec_dir / "2026-03" and path.name.startswith("rec-1700000000.42-")
    assert path.read_bytes() == audio
    assert mode(path) == 0o600 and mode(path.parent) == 0o700 and mode(w.rec_dir) == 0o700
    assert (rec.call_id, rec.name, rec.number, rec.caller) == ("1700000000.42", "rec-1700000000.42", KYIV, CALLER)
    assert rec.started_at == iso(T0 + timedelta(seconds=5))                  # answered, not started
    assert rec.duration == pytest.approx(3.0, abs=0.001) and rec.bytes == len(audio)
    assert rec.expires_at == iso(T0 + timedelta(seconds=5) + timedelta(days=90))
    assert w.store.recordings.get(rec.id) == rec
    assert files_under(w.rec_dir) == [path]


def test_keep_is_idempotent_per_call_and_the_latest_audio_replaces(w: World) -> None:
    w.call("c1")
    first = w.keep("c1", wav(1.0))
    before = w.dump()
    assert w.keep("c1", wav(1.0)) == first and w.dump() == before            # the same audio again: nothing
    longer = w.keep("c1", wav(2.5))
    assert longer.id == first.id and longer.duration == pytest.approx(2.5, abs=0.001)
    assert files_under(w.rec_dir) == [Path(longer.path)] and longer.path != first.path
    assert len(w.store.recordings.search()) == 1
    Path(longer.path).unlink()                                   # the file went: the same audio writes it again
    again = w.keep("c1", wav(2.5))
    assert again == longer and Path(again.path).read_bytes() == wav(2.5)


def test_keep_mends_a_header_asterisk_never_finished(w: World) -> None:
    """Killed mid-call, Asterisk leaves the WAV sizes unwritten: the part recorded so far is kept, readable."""
    w.call("c1")
    audio = wav(4.0, freq=1000)
    rec = w.keep("c1", unfinished_header(audio))
    assert rec.duration == pytest.approx(4.0, abs=0.001)
    stored = Path(rec.path).read_bytes()
    assert stored == audio                                    # the sizes are what they would have been
    data, rate = sf.read(io.BytesIO(stored))
    assert rate == RATE and len(data) == 4 * RATE
    # a header claiming more than there is (truncated file): what is there
    cut = audio[:len(audio) - 1001]
    rec2 = w.keep(w.call("c2"), cut)
    assert rec2.duration == pytest.approx((len(cut) - 44 - 1) / 2 / RATE, abs=0.001)   # whole samples only
    assert sf.info(rec2.path).frames == (len(cut) - 44) // 2


@pytest.mark.parametrize("audio", [b"", b"RIFF", b"not a wav at all, really", wav(1.0)[:36],
                                   wav(1.0).replace(b"fmt ", b"xxxx")])
def test_keep_refuses_what_is_not_a_wav_and_writes_nothing(w: World, audio: bytes) -> None:
    w.call("c1")
    refused(w, ValidationError, "recording of call c1: the", w.keep, "c1", audio)
    assert not w.rec_dir.exists()


def test_keep_refuses_other_formats_and_unknown_calls(w: World) -> None:
    w.call("c1")
    refused(w, ValidationError, "format 'gsm' is not kept; record with format wav", w.keep, "c1", wav(1.0),
            fmt="gsm")
    refused(w, NotFoundError, "there is no call record nosuch", w.keep, "nosuch", wav(1.0))


def test_keep_leaves_no_file_when_the_row_cannot_be_written(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w.call("c1")

    def broken(**_: object) -> None:
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(w.store.recordings, "put", broken)
    with pytest.raises(RuntimeError):
        w.keep("c1", wav(1.0))
    assert files_under(w.rec_dir) == [] and w.store.recordings.search() == []


def test_keep_into_a_directory_it_cannot_make_is_one_error(w: World) -> None:
    w.call("c1")
    blocker = w.tmp / "blocker"
    blocker.write_text("a file where the recordings dir should be")
    w.cfg = replace(w.cfg, recording=RecordingSettings(dir=blocker))
    refused(w, ConfigError, r"cannot write .*check \[recording\] dir", w.keep, "c1", wav(1.0))


def test_keep_uses_the_configured_dir_and_retention(w: World) -> None:
    w.call("c1")
    w.cfg = replace(w.cfg, recording=RecordingSettings(dir=w.tmp / "elsewhere", retention_days=0))
    rec = w.keep("c1", wav(1.0))
    assert Path(rec.path).parent == w.tmp / "elsewhere" / "2026-03" and rec.expires_at is None


# ---- list, export, remove -------------------------------------------------------------------------------------------
def test_list_filters_by_number_and_day_newest_first(w: World) -> None:
    a = w.keep(w.call("a", KYIV, T0), wav(1.0))
    b = w.keep(w.call("b", KYIV2, T0 + timedelta(days=1)), wav(1.0))
    c = w.keep(w.call("c", KYIV, T0 + timedelta(days=2)), wav(1.0))
    ids = lambda rows: [r.id for r in rows]  # noqa: E731
    assert ids(recordings.list_recordings(w.store)) == [c.id, b.id, a.id]
    assert ids(recordings.list_recordings(w.store, number=KYIV)) == [c.id, a.id]
    assert ids(recordings.list_recordings(w.store, since="2026-03-02")) == [c.id, b.id]
    assert ids(recordings.list_recordings(w.store, number=KYIV2, since="2026-03-03")) == []
    assert ids(recordings.list_recordings(w.store, limit=1)) == [c.id]
    for bad in ("yesterday", "2026-3-1", "20260301", "2026-02-30"):
        with pytest.raises(ValidationError, match="is not a date; use YYYY-MM-DD"):
            recordings.list_recordings(w.store, since=bad)


def test_export_is_an_atomic_0600_copy_and_overwrites_only_with_force(w: World) -> None:
    audio = wav(2.0)
    rec = w.keep(w.call("c1"), audio)
    out = w.tmp / "out"
    out.mkdir()
    target = out / "call.wav"
    assert recordings.export(w.store, rec.id, target) == target
    assert target.read_bytes() == audio and mode(target) == 0o600
    target.write_bytes(b"mine")
    with pytest.raises(ConflictError, match=r"exists already; give --force"):
        recordings.export(w.store, rec.id, target)
    assert target.read_bytes() == b"mine"
    recordings.export(w.store, rec.id, target, force=True)
    assert target.read_bytes() == audio
    assert sorted(p.name for p in out.iterdir()) == ["call.wav"]             # no temporary file left
    with pytest.raises(ValidationError, match="is a directory; give a file name"):
        recordings.export(w.store, rec.id, out)
    with pytest.raises(NotFoundError, match="does not exist"):
        recordings.export(w.store, rec.id, w.tmp / "nodir" / "x.wav")
    with pytest.raises(NotFoundError, match=r"recording 999 not found"):
        recordings.export(w.store, 999, out / "y.wav")


def test_export_refuses_a_missing_or_changed_file(w: World) -> None:
    rec = w.keep(w.call("c1"), wav(1.0))
    target = w.tmp / "x.wav"
    Path(rec.path).write_bytes(wav(1.5))
    with pytest.raises(ConflictError, match="was changed on disk"):
        recordings.export(w.store, rec.id, target)
    Path(rec.path).unlink()
    with pytest.raises(NotFoundError, match=rf"file .* is gone; remove the recording with `vpbx recording remove "
                                            rf"{rec.id}`"):
        recordings.export(w.store, rec.id, target)
    assert not target.exists()


def test_remove_is_all_or_nothing(w: World) -> None:
    a = w.keep(w.call("a"), wav(1.0))
    b = w.keep(w.call("b"), wav(1.0))
    refused(w, NotFoundError, "recording 999 not found", recordings.remove, w.store, [a.id, 999])
    refused(w, ValidationError, "no recording to remove", recordings.remove, w.store, [])
    assert [r.id for r in recordings.remove(w.store, [a.id, a.id])] == [a.id]
    assert files_under(w.rec_dir) == [Path(b.path)] and [r.id for r in w.store.recordings.search()] == [b.id]
    Path(b.path).unlink()                                    # a row whose file is gone (a crash mid-delete)
    recordings.remove(w.store, [b.id])
    assert w.store.recordings.search() == []


# ---- retention ------------------------------------------------------------------------------------------------------
def test_purge_deletes_what_is_past_retention_with_an_injected_now(w: World) -> None:
    old = w.keep(w.call("old", started=T0), wav(1.0))
    new = w.keep(w.call("new", started=T0 + timedelta(days=10)), wav(1.0))
    expiry = T0 + timedelta(seconds=5, days=90)
    assert recordings.purge(w.store, w.cfg, expiry - timedelta(seconds=1)) == 0
    assert len(w.store.recordings.search()) == 2
    assert recordings.purge(w.store, w.cfg, expiry) == 1
    assert [r.id for r in w.store.recordings.search()] == [new.id]
    assert not Path(old.path).exists() and Path(new.path).exists()
    assert recordings.purge(w.store, w.cfg, expiry) == 0                      # twice: nothing more


def test_purge_finishes_a_row_whose_file_went_and_never_deletes_kept_forever(w: World) -> None:
    rec = w.keep(w.call("a"), wav(1.0))
    Path(rec.path).unlink()                                  # a crash between deleting the file and the row
    assert recordings.purge(w.store, w.cfg, T0 + timedelta(days=91)) == 1
    assert w.store.recordings.search() == []
    w.cfg = replace(w.cfg, recording=RecordingSettings(retention_days=0))
    forever = w.keep(w.call("b"), wav(1.0))
    assert recordings.purge(w.store, w.cfg, T0 + timedelta(days=36500)) == 0
    assert Path(forever.path).exists()


def test_purge_deletes_stray_files_a_crash_left_once_past_retention(w: World) -> None:
    """File mtimes are the real clock's, so this test's `now` is the real one, moved on."""
    rec = w.keep(w.call("a", started=datetime.now(UTC) + timedelta(hours=1)), wav(1.0))
    month = Path(rec.path).parent
    stray = month / "rec-1700000000.1-0123456789ab.wav"        # written, then the row never committed
    tmp = month / ".rec-1700000000.2-0123456789ab.wav.abcd1234.tmp"
    other = month / "notes.txt"
    elsewhere = w.rec_dir / "rec-1700000000.3-0123456789ab.wav"   # not in a month dir: not vpbx's
    for f in (stray, tmp, other, elsewhere):
        f.write_bytes(b"x")
    now = datetime.now(UTC)
    assert recordings.purge(w.store, w.cfg, now + timedelta(hours=23)) == 0
    assert stray.exists() and tmp.exists()
    recordings.purge(w.store, w.cfg, now + timedelta(days=1, minutes=1))
    assert stray.exists() and not tmp.exists()                  # a temporary file: after a day
    recordings.purge(w.store, w.cfg, now + timedelta(days=90))
    assert not stray.exists()                                   # past the retention period
    assert other.exists() and elsewhere.exists() and Path(rec.path).exists()   # a named file stays until it expires


def test_billing_run_purges_and_reports_it(w: World) -> None:
    w.keep(w.call("a"), wav(1.0))
    later = T0 + timedelta(days=100)
    summary = lifecycle.billing_run(w.store, w.cfg, later.date(), later)
    assert summary["recordings_purged"] == 1 and w.store.recordings.search() == []
    assert lifecycle.billing_run(w.store, w.cfg, later.date(), later)["recordings_purged"] == 0


def test_calls_list_names_the_recording(w: World) -> None:
    rec = w.keep(w.call("a"), wav(1.0))
    w.call("b", started=T0 + timedelta(minutes=5))
    rows = {r["call_id"]: r["recording"] for r in calls_service.recent(w.store)}
    assert rows == {"a": rec.id, "b": None}


# ---- config ---------------------------------------------------------------------------------------------------------
def test_recording_config_defaults_relative_dir_and_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "vpbx.toml"
    cfg = new_config(tmp_path)
    write_config(cfg, path)
    loaded = load_config(str(path))
    assert loaded == replace(cfg, path=path) and loaded.recording == RecordingSettings()
    assert recordings.recordings_dir(loaded) == tmp_path.resolve() / "recordings"
    text = path.read_text().replace('dir = ""', 'dir = "rec"').replace("retention_days = 90", "retention_days = 30")
    path.write_text(text)
    loaded = load_config(str(path))
    assert loaded.recording == RecordingSettings(dir=tmp_path / "rec", retention_days=30)
    write_config(loaded, path, force=True)
    assert load_config(str(path)).recording == loaded.recording


@pytest.mark.parametrize(("body", "needle"), [
    ("retention_days = -1", "retention_days must be a whole number of days"),
    ("retention_days = true", "retention_days must be a whole number of days"),
    ('retention_days = "90"', "retention_days must be a whole number of days"),
    ("retention_days = 1.5", "retention_days must be a whole number of days"),
    ("dir = 5", "dir must be a directory path"),
    ("keep = 3", "unknown setting 'keep'"),
])
def test_bad_recording_config_is_one_config_error(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "vpbx.toml"
    path.write_text(f"[recording]\n{body}\n")
    with pytest.raises(ConfigError, match=rf"\[recording\].*{needle}"):
        load_config(str(path))


# ---- the command line -----------------------------------------------------------------------------------------------
class Cli:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cfg_path = tmp / "vpbx.toml"
        self.db = tmp / "vpbx.db"
        ok(self.run_("--config", self.cfg_path, "init", "--dir", tmp, "--sounds-dir", tmp / "sounds"))
        tone = tmp / "tone.wav"
        tone.write_bytes(wav(0.5))
        self.ok("prompt", "add", "rec-notice", tone)
        self.ok("number", "add", KYIV, "--direction", "both")
        self.ok("sip", "add", "alice", "--caller-id", KYIV)
        self.ok("account", "add", "acme", "--email", "boss@acme.example")

    def run_(self, *args: object) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], env=CLEAN_ENV)

    def __call__(self, *args: object) -> Result:
        return self.run_("--config", self.cfg_path, *args)

    def ok(self, *args: object) -> Result:
        return ok(self(*args))

    def json(self, *args: object):
        result = self.ok(*args, "--json")
        assert result.stderr == ""
        return json.loads(result.stdout)

    def fails(self, *args: object, needles: tuple[str, ...] = (), code: int = 1) -> str:
        before = dump(self.db)
        files = {p: p.read_bytes() for p in files_under(self.tmp / "recordings")}
        result = self(*args)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        lines = result.stderr.splitlines()
        if code == 1:
            assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
            assert result.stdout == ""
            for needle in needles:
                assert needle in lines[0], (needle, lines[0])
        assert dump(self.db) == before, "a failed command changed the database"
        assert {p: p.read_bytes() for p in files_under(self.tmp / "recordings")} == files
        return lines[0] if lines else ""

    def keep(self, call_id: str, audio: bytes, number: str = KYIV, started: datetime = T0) -> int:
        with Store.open(self.db) as store:
            store.calls.add(call_id, number, CALLER, started_at=iso(started))
            store.calls.finish(call_id, ended_at=iso(started + timedelta(minutes=1)), answered_at=iso(started))
            return recordings.keep(store, load_config(str(self.cfg_path)), call_id, audio).id


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_cli_settings_on_number_sip_and_account(cli: Cli) -> None:
    shown = cli.json("number", "set", KYIV, "--record", "--record-prompt", "rec-notice")
    assert [(n["record_calls"], n["record_prompt"]) for n in shown] == [(True, "rec-notice")]
    assert cli.json("number", "show", KYIV)["record_calls"] is True
    assert cli.json("number", "set", KYIV, "--no-record", "--record-prompt", "none")[0]["record_prompt"] is None
    shown = cli.json("sip", "set", "alice", "--record")
    assert (shown["record_calls"], shown["record_prompt"], "password" in shown) == (True, None, False)
    shown = cli.json("account", "set", "acme", "--record", "--record-prompt", "rec-notice")
    assert (shown["record_calls"], shown["record_prompt"]) == (True, "rec-notice")
    assert cli.json("account", "show", "acme")["record_calls"] is True


def test_cli_refused_settings_change_nothing(cli: Cli) -> None:
    for cmd in (("number", "set", KYIV), ("sip", "set", "alice"), ("account", "set", "acme")):
        cli.fails(*cmd, "--record", "--record-prompt", "nosuch", needles=("record prompt nosuch is not installed",
                                                                            "vpbx prompt add nosuch"))
        cli.fails(*cmd, "--record-prompt", "bad/name", needles=("prompt name 'bad/name' is not valid",))
    # several numbers, one unknown: all or nothing
    cli.fails("number", "set", KYIV, "+380442718459", "--record", needles=("+380442718459",))
    cli.fails("number", "set", KYIV, "--record", "--record", "--no-record", "--channels", "2",
              needles=("at least 4",))


def test_cli_list_export_remove(cli: Cli) -> None:
    audio = wav(2.0)
    first = cli.keep("1700000000.1", audio, started=T0)
    second = cli.keep("1700000000.2", wav(1.0), started=T0 + timedelta(days=2))
    rows = cli.json("recording", "list")
    assert [r["id"] for r in rows] == [second, first]
    assert set(rows[0]) >= {"id", "call_id", "number", "caller", "started_at", "duration", "bytes", "expires_at"}
    assert [r["id"] for r in cli.json("recording", "list", "--number", KYIV, "--since", "2026-03-02")] == [second]
    assert cli.json("recording", "list", "--number", "+380442718459") == []
    table = cli.ok("recording", "list", "--format", "table").stdout
    assert "1700000000.1" in table and "recordings" in table

    calls = {c["call_id"]: c["recording"] for c in cli.json("calls", "list")}
    assert calls == {"1700000000.1": first, "1700000000.2": second}
    assert "recording" in cli.ok("calls", "list").stdout

    target = cli.tmp / "call.wav"
    assert f"Exported recording {first} to {target}" in cli.ok("recording", "export", first, target).stdout
    assert target.read_bytes() == audio and mode(target) == 0o600
    target.write_bytes(b"keep me")
    cli.fails("recording", "export", first, target, needles=("exists already; give --force",))
    assert target.read_bytes() == b"keep me"
    cli.ok("recording", "export", first, target, "--force")
    assert target.read_bytes() == audio
    cli.fails("recording", "export", 999, cli.tmp / "x.wav", needles=("recording 999 not found",))
    assert not (cli.tmp / "x.wav").exists()

    cli.fails("recording", "remove", first, 999, needles=("recording 999 not found",))
    assert f"Removed recording {first}" in cli.ok("recording", "remove", first).stdout
    assert [r["id"] for r in cli.json("recording", "list")] == [second]
    assert cli.json("calls", "list")[0]["recording"] == second


def test_cli_bad_input_is_one_error_line_or_usage(cli: Cli) -> None:
    cli.keep("c1", wav(1.0))
    cli.fails("recording", "list", "--since", "yesterday", needles=("--since 'yesterday' is not a date",))
    cli.fails("recording", "export", "abc", cli.tmp / "x.wav", code=2)
    cli.fails("recording", "remove", code=2)
    cli.fails("recording", "remove", "1x", code=2)
    cli.fails("recording", "list", "--limit", "0", code=2)


def test_cli_billing_run_reports_purged_recordings(cli: Cli) -> None:
    cli.keep("c1", wav(1.0), started=datetime.now(UTC) - timedelta(days=200))
    out = cli.ok("billing", "run").stdout
    assert "Recordings purged (past retention): 1" in out
    assert cli.json("recording", "list") == []
    assert cli.json("billing", "run", "--date", date.today().isoformat())["recordings_purged"] == 0


def test_a_wav_header_is_what_struct_says(tmp_path: Path) -> None:
    """The helper's WAVs are what the tests assume: 44-byte header, PCM 16-bit mono 8 kHz."""
    audio = wav(1.0)
    assert audio[:4] == b"RIFF" and audio[36:40] == b"data" and struct.unpack_from("<I", audio, 40)[0] == 2 * RATE
