"""`vpbx backup` / `vpbx restore` (issue 10) and schema upgrades on open.

A populated install (numbers, SIP account, trunk, group, IVR, account with ledger, a number sold and waiting for
documents, a stored document, call records, a queued notice and a spooled voicemail, an uploaded prompt) is backed
up and restored into a fresh directory: every table's rows are equal (the documents' paths moved to the new dir), the
files are the same bytes with owner-only modes, `vpbx account check` passes there. Refused commands change nothing on
disk; hostile archives are refused before anything is written. A database one schema behind is migrated on open with
one line; a newer one is refused. The last test runs `vpbx serve` on the real Asterisk sandbox and backs up while sipp
calls are being written.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from click.testing import CliRunner, Result
from conftest import channels_left, stop_process
from test_engine_asterisk import _unique_number

from clitools import ok
from vpbx.cli import main
from vpbx.storage.store import CODE_SCHEMA, MIGRATION_NAMES, Store, migrations

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tariffs" / "seed-ru.toml"
CLEAN_ENV = {"VPBX_CONFIG": None, "VPBX_DB": None, "COLUMNS": "250"}
MOSCOW = "+74952718459"
KYIV = "+380442718459"


# ---- helpers --------------------------------------------------------------------------------------------------
def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=CLEAN_ENV)


def error_line(result: Result, *needles: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r} instead of an Error: line"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def tree(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file and dir under roots (hidden ones included): mode and content hash, to prove nothing changed."""
    out: dict[str, tuple[int, str]] = {}
    for root in roots:
        if not root.exists():
            continue
        for p in sorted(root.rglob("*")):
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            out[str(p)] = (mode(p), digest)
    return out


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY rowid').fetchall() for n in names}
    finally:
        con.close()


def wav(path: Path, seconds: float = 0.1, tone: int = 1) -> Path:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(8000 * seconds)) / 8000
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * tone * t), 8000, subtype="PCM_16")
    return path


class Install:
    """A vpbx install made by `vpbx init` in `dir`, prompts in `sounds`."""

    def __init__(self, base: Path, name: str = "src") -> None:
        self.dir = base / name
        self.sounds = base / f"{name}-sounds"
        self.cfg = self.dir / "vpbx.toml"
        self.db = self.dir / "vpbx.db"
        ok(invoke("--config", self.cfg, "init", "--dir", self.dir, "--sounds-dir", self.sounds))

    def __call__(self, *args: Any) -> Result:
        return invoke("--config", self.cfg, *args)

    def ok(self, *args: Any) -> Result:
        return ok(self(*args))

    def json(self, *args: Any) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)


def populate(vp: Install, tmp: Path) -> None:
    vp.ok("tariff", "load", SEED)
    vp.ok("account", "add", "acme", "--email", "acme@example.com", "--org-id", "500")
    vp.ok("account", "topup", "acme", "10000", "--ref", "bank 4711")
    vp.ok("trunk", "add", "provider", "--server", "sip.example.net", "--login", "l", "--password", "trunk-secret-1")
    vp.ok("number", "add", MOSCOW)
    vp.ok("number", "add", KYIV)
    vp.ok("sip", "add", "alice", "--password", "alice-secret-1")
    vp.ok("prompt", "add", "welcome", wav(tmp / "welcome.wav"))
    vp.ok("prompt", "add", "welcome", wav(tmp / "welcome-ru.wav", tone=2), "--language", "ru")
    vp.ok("group", "add", "sales", "--member", "sip:alice", "--strategy", "sequential")
    vp.ok("ivr", "add", "main", "--prompt", "welcome", "--option", "1=group:sales")
    vp.ok("number", "route", KYIV, "ivr:main", "--greeting", "welcome")
    vp.ok("number", "set", MOSCOW, "--requires-documents")
    vp.ok("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov")
    doc = tmp / "passport scan.pdf"
    doc.write_bytes(b"%PDF-1.4 the end user's passport\n" * 50)
    vp.ok("document", "add", MOSCOW, doc)
    with Store.open(vp.db) as store:
        for i in range(5):
            store.calls.add(f"call-{i}", KYIV, f"+38067111220{i}")
            store.calls.finish(f"call-{i}", ended_at="2026-11-30T10:00:00+00:00", disposition="answered")
        store.outbox.queue_voicemail("rec-1", "call-0", KYIV, "+380671112200", ["office@example.com"], 3.5)
    spool = vp.dir / "voicemail-spool"
    spool.mkdir(mode=0o700)
    (spool / "rec-1.wav").write_bytes(wav(tmp / "vm.wav", seconds=0.5).read_bytes())
    os.chmod(spool / "rec-1.wav", 0o600)


@pytest.fixture
def src(tmp_path: Path) -> Install:
    vp = Install(tmp_path)
    populate(vp, tmp_path)
    return vp


def backup(vp: Install, path: Path, *extra: Any) -> dict[str, Any]:
    result = vp.ok("backup", path, *extra, "--json")
    return json.loads(result.stdout)


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def rewrite(archive: Path, out: Path, change: Any) -> Path:
    """A copy of `archive` whose members went through change(list of (TarInfo, bytes)) -> list."""
    with tarfile.open(archive, "r:gz") as tar:
        items = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    items = change(items)
    with tarfile.open(out, "w:gz") as tar:
        for info, data in items:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out


def with_manifest(items: list[tuple[tarfile.TarInfo, bytes]], edit: Any) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    for info, data in items:
        if info.name == "manifest.json":
            doc = json.loads(data)
            edit(doc)
            data = json.dumps(doc).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
        out.append((info, data))
    return out


def replace_member(items: list[tuple[tarfile.TarInfo, bytes]], name: str, data: bytes,
                   manifest_edit: Any = None) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Put `data` in place of member `name` and fix its size and sha256 in the manifest (a consistent archive)."""
    def edit(doc: dict[str, Any]) -> None:
        for row in doc["files"]:
            if row["path"] == name:
                row["size"], row["sha256"] = len(data), hashlib.sha256(data).hexdigest()
        if manifest_edit:
            manifest_edit(doc)

    out = []
    for info, old in with_manifest(items, edit):
        if info.name == name:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            old = data
        out.append((info, old))
    return out


# ---- round trip -----------------------------------------------------------------------------------------------
def test_round_trip_restores_every_row_file_and_secret(src: Install, tmp_path: Path) -> None:
    archive = tmp_path / "out" / "vpbx-backup.tar.gz"
    archive.parent.mkdir()
    summary = backup(src, archive)
    assert mode(archive) == 0o600
    assert sorted(p.name for p in archive.parent.iterdir()) == ["vpbx-backup.tar.gz"]    # no temp file left
    assert (summary["schema_version"], summary["prompts"], summary["documents"], summary["voicemail_spool"]) == \
        (CODE_SCHEMA, 2, 1, 1)

    files = members(archive)
    manifest = json.loads(files["manifest.json"])
    assert manifest["format"] == "vpbx-backup" and manifest["vpbx_version"] == "0.1.0"
    assert manifest["schema_version"] == CODE_SCHEMA == len(manifest["schema_migrations"])
    assert manifest["created_at"].endswith("+00:00")
    listed = {row["path"]: row for row in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}
    assert {"vpbx.db", "vpbx.toml", "prompts/en/welcome.wav", "prompts/ru/welcome.wav",
            "voicemail-spool/rec-1.wav"} <= set(listed)
    assert [p for p in listed if p.startswith("documents/")] == [
        f"documents/{Path(d['path']).relative_to(src.dir / 'documents')}" for d in src.json("document", "list")]
    for name, row in listed.items():
        assert (row["size"], row["sha256"]) == (len(files[name]), hashlib.sha256(files[name]).hexdigest())
    assert files["vpbx.toml"] == src.cfg.read_bytes()
    # the built-in prompts of Asterisk's own sounds are not ours: only <lang>/vpbx/ is archived
    assert all(p.startswith(("prompts/", "documents/", "voicemail-spool/")) or p in ("vpbx.db", "vpbx.toml")
               for p in listed)

    dest, sounds = tmp_path / "restored", tmp_path / "restored-sounds"
    result = ok(invoke("restore", archive, "--dir", dest, "--sounds-dir", sounds, "--json"))
    assert result.stderr == ""
    assert json.loads(result.stdout)["schema_version"] == {"archive": CODE_SCHEMA, "restored": CODE_SCHEMA}
    assert sorted(p.name for p in dest.iterdir()) == ["documents", "voicemail-spool", "vpbx.db", "vpbx.toml"]

    before, after = tables(src.db), tables(dest / "vpbx.db")
    assert set(before) == set(after) and len(before) >= 15
    for name in before:
        if name != "documents":
            assert after[name] == before[name], name
    moved = [(*row[:4], row[4].replace(str(src.dir), str(dest)), *row[5:]) for row in before["documents"]]
    assert after["documents"] == moved and len(moved) == 1
    empty = [n for n in ("numbers", "sip_accounts", "trunks", "groups", "ivrs", "calls", "accounts", "ledger",
                         "documents", "outbox", "tariff", "_sqlite_migrations") if not before[n]]
    assert not empty, f"the source install should have rows in {empty}"

    cfg = tomllib.loads((dest / "vpbx.toml").read_text())
    old = tomllib.loads(src.cfg.read_text())
    assert cfg["vpbx"]["db"] == str(dest / "vpbx.db") and cfg["asterisk"]["sounds_dir"] == str(sounds)
    assert cfg["ari"] == old["ari"] and cfg["ami"] == old["ami"] and cfg["billing"] == old["billing"]
    assert mode(dest / "vpbx.toml") == mode(dest / "vpbx.db") == 0o600
    doc = Path(after["documents"][0][4])
    assert doc.read_bytes() == Path(before["documents"][0][4]).read_bytes() and mode(doc) == 0o600
    assert mode(doc.parent) == 0o700
    spooled = Path("voicemail-spool") / "rec-1.wav"
    assert (dest / spooled).read_bytes() == (src.dir / spooled).read_bytes() and mode(dest / spooled) == 0o600
    for lang in ("en", "ru"):
        restored = sounds / lang / "vpbx" / "welcome.wav"
        assert restored.read_bytes() == (src.sounds / lang / "vpbx" / "welcome.wav").read_bytes()
        assert mode(restored) == 0o644            # Asterisk reads prompts
    assert not [p for p in dest.rglob(".*")] and not [p for p in sounds.rglob(".*")]

    # the restored install works on its own: the CLI finds everything through its config
    restored = invoke("--config", dest / "vpbx.toml", "account", "check")
    assert ok(restored).stdout.startswith("OK: 1 account(s)"), restored.stdout
    listed_prompts = json.loads(ok(invoke("--config", dest / "vpbx.toml", "prompt", "list", "--json")).stdout)
    assert {(p["name"], p["language"]) for p in listed_prompts} == {("welcome", "en"), ("welcome", "ru")}
    calls = json.loads(ok(invoke("--config", dest / "vpbx.toml", "calls", "list", "--json")).stdout)
    assert len(calls) == 5
    shutil.rmtree(src.dir)       # nothing of the restored install points back at the original
    assert ok(invoke("--config", dest / "vpbx.toml", "account", "check")).stdout.startswith("OK: 1 account(s)")
    assert json.loads(ok(invoke("--config", dest / "vpbx.toml", "document", "list", "--json")).stdout)[0]["number"] \
        == MOSCOW


def test_restore_default_sounds_dir_is_the_archived_configs(src: Install, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    backup(src, archive)
    shutil.rmtree(src.sounds)          # a machine whose sounds dir is empty (e.g. a rebuilt one)
    ok(invoke("restore", archive, "--dir", tmp_path / "again"))
    assert (src.sounds / "en" / "vpbx" / "welcome.wav").is_file()
    assert tomllib.loads((tmp_path / "again" / "vpbx.toml").read_text())["asterisk"]["sounds_dir"] == str(src.sounds)


# ---- refusals change nothing ----------------------------------------------------------------------------------
def test_backup_refuses_an_existing_file_unless_force(src: Install, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(b"precious")
    error_line(src("backup", archive), "already exists", "--force")
    assert archive.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    ok(src("backup", archive, "--force"))
    assert "manifest.json" in members(archive) and mode(archive) == 0o600


def test_backup_without_a_config_file_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path / "v.db").close()
    error_line(invoke("--db", tmp_path / "v.db", "backup", tmp_path / "b.tar.gz"), "config", "--config")
    assert not (tmp_path / "b.tar.gz").exists()


def test_restore_refuses_to_overwrite_an_install_or_other_prompts(src: Install, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    backup(src, archive)
    other = Install(tmp_path, "other")
    other.ok("number", "add", "+380442718400")
    (other.sounds / "en" / "vpbx").mkdir(parents=True)
    wav(other.sounds / "en" / "vpbx" / "welcome.wav", tone=3)    # someone else's prompt of the same name
    watched = (other.dir, other.sounds, src.dir, src.sounds)
    before = tree(*watched)
    error_line(invoke("restore", archive, "--dir", other.dir, "--sounds-dir", tmp_path / "fresh-sounds"),
               str(other.cfg), "already exists", "--force")
    error_line(invoke("restore", archive, "--dir", tmp_path / "fresh", "--sounds-dir", other.sounds),
               "welcome.wav", "--force")
    # the archived config's sounds dir is someone else's now: the error says how to put the prompts elsewhere
    shutil.copytree(other.sounds, src.sounds, dirs_exist_ok=True)
    before = tree(*watched)
    error_line(invoke("restore", archive, "--dir", tmp_path / "fresh"), "welcome.wav", "--sounds-dir")
    assert tree(*watched) == before
    assert not (tmp_path / "fresh").exists() and not (tmp_path / "fresh-sounds").exists()
    # a prompt with the same audio is no conflict
    ok(invoke("restore", archive, "--dir", tmp_path / "same", "--sounds-dir", tmp_path / "same-sounds"))
    ok(invoke("restore", archive, "--dir", tmp_path / "same2", "--sounds-dir", tmp_path / "same-sounds"))


def test_restore_force_replaces_an_install(src: Install, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    backup(src, archive)
    other = Install(tmp_path, "other")
    other.ok("number", "add", "+380442718400")
    with sqlite3.connect(other.db) as con:      # leave a WAL file behind, as a crashed process would
        con.execute("PRAGMA wal_autocheckpoint = 0")
    ok(invoke("restore", archive, "--dir", other.dir, "--sounds-dir", other.sounds, "--force"))
    assert tables(other.db)["numbers"] == tables(src.db)["numbers"]
    assert tomllib.loads(other.cfg.read_text())["ari"] == tomllib.loads(src.cfg.read_text())["ari"]
    assert not [p for p in other.dir.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("fail_at", ["vpbx.toml", "welcome.wav"])
def test_a_restore_that_fails_half_way_puts_everything_back(src: Install, tmp_path: Path, fail_at: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """--force over an install: the disk fails at the last move (the config) or at the last prompt; the install,
    its prompts and its directory are as they were, no temp file is left."""
    archive = tmp_path / "b.tar.gz"
    backup(src, archive)
    other = Install(tmp_path, "other")
    other.ok("number", "add", "+380442718400")
    for lang in ("en", "ru"):
        (other.sounds / lang / "vpbx").mkdir(parents=True)
        wav(other.sounds / lang / "vpbx" / "welcome.wav", tone=5)
    before = tree(other.dir, other.sounds)
    real_rename, real_replace = os.rename, os.replace

    def failing(real: Any) -> Any:
        def move(src_: Any, dst: Any) -> None:
            if Path(dst).name == fail_at and (fail_at == "vpbx.toml" or "ru" in Path(dst).parts):
                raise OSError(28, "No space left on device")
            real(src_, dst)
        return move

    monkeypatch.setattr(os, "rename", failing(real_rename))
    monkeypatch.setattr(os, "replace", failing(real_replace))
    error_line(invoke("restore", archive, "--dir", other.dir, "--sounds-dir", other.sounds, "--force"),
               "No space left on device", "nothing was changed")
    monkeypatch.undo()
    assert tree(other.dir, other.sounds) == before
    assert tables(other.db)["numbers"] != tables(src.db)["numbers"]


# ---- hostile archives -----------------------------------------------------------------------------------------
def _add(items: list[tuple[tarfile.TarInfo, bytes]], info: tarfile.TarInfo,
         data: bytes = b"") -> list[tuple[tarfile.TarInfo, bytes]]:
    info.size = len(data) if info.isreg() else 0
    return [*items, (info, data)]


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def _listed(name: str, data: bytes) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        doc["files"].append({"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return edit


HOSTILE = {
    "absolute path": (lambda items: _add(items, _member("/tmp/evil"), b"x"), "/tmp/evil"),
    "dot-dot": (lambda items: _add(items, _member("documents/../../evil"), b"x"), ".."),
    "symlink": (lambda items: _add(items, _member("documents/link", tarfile.SYMTYPE, "/etc/passwd")), "symlink"),
    "hard link": (lambda items: _add(items, _member("documents/hard", tarfile.LNKTYPE, "vpbx.toml")), "hard link"),
    "device": (lambda items: _add(items, _member("documents/dev", tarfile.CHRTYPE)), "device"),
    "directory": (lambda items: _add(items, _member("documents", tarfile.DIRTYPE)), "directory"),
    "not in the manifest": (lambda items: _add(items, _member("documents/extra.pdf"), b"x"), "does not list"),
    "listed symlink": (lambda items: with_manifest(_add(items, _member("prompts/en/x.wav", tarfile.SYMTYPE,
                                                                       "/etc/shadow")),
                                                   _listed("prompts/en/x.wav", b"")), "symlink"),
    "manifest lists ../": (lambda items: with_manifest(_add(items, _member("documents/a"), b"x"),
                                                       _listed("../a", b"x")), "../a"),
    "checksum": (lambda items: [(i, d if i.name != "vpbx.toml" else d.replace(b"vpbx.local", b"evil.local"))
                                for i, d in items], "sha256"),
    "member missing": (lambda items: [(i, d) for i, d in items if i.name != "vpbx.toml"], "lacks"),
    "no manifest": (lambda items: [(i, d) for i, d in items if i.name != "manifest.json"], "manifest.json"),
    "duplicate": (lambda items: [*items, items[-1]], "twice"),
    "hidden name": (lambda items: _add(items, _member("documents/.bashrc"), b"x"), ".bashrc"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_is_written(src: Install, tmp_path: Path, case: str) -> None:
    archive = tmp_path / "b.tar.gz"
    backup(src, archive)
    change, needle = HOSTILE[case]
    bad = rewrite(archive, tmp_path / "bad.tar.gz", change)
    dest, sounds = tmp_path / "dest", tmp_path / "sounds"
    line = error_line(invoke("restore", bad, "--dir", dest, "--sounds-dir", sounds), str(bad), needle)
    assert "Traceback" not in line
    assert not dest.exists() and not sounds.exists()
    assert not Path("/tmp/evil").exists()


def test_archives_that_are_not_backups_are_refused(tmp_path: Path) -> None:
    (tmp_path / "plain.tar.gz").write_bytes(b"not gzip at all")
    error_line(invoke("restore", tmp_path / "plain.tar.gz", "--dir", tmp_path / "d"), "not a readable tar.gz")
    (tmp_path / "cut.tar.gz").write_bytes(gzip.compress(b"x" * 10000)[:50])
    error_line(invoke("restore", tmp_path / "cut.tar.gz", "--dir", tmp_path / "d"), "cut.tar.gz")
    error_line(invoke("restore", tmp_path / "missing.tar.gz", "--dir", tmp_path / "d"), "not found")
    assert not (tmp_path / "d").exists()


# ---- schema versions ------------------------------------------------------------------------------------------
def old_db(path: Path, before: str = "m006_one_outbox") -> Path:
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before=before)
    db.execute("INSERT INTO numbers (number, channels, direction, type, category, created_at) "
               "VALUES ('+380441234567', 6, 'both', 'geographic', 'gold', '2024-01-01T00:00:00+00:00')")
    db.conn.commit()
    db.close()
    return path


def upgrade_lines(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if "upgraded from schema" in r.getMessage()]


def test_an_older_database_is_migrated_on_open_with_one_line(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    db = old_db(tmp_path / "old.db")
    caplog.set_level(logging.WARNING, logger="vpbx")
    result = ok(invoke("--db", db, "number", "list", "--json"))
    assert [n["number"] for n in json.loads(result.stdout)] == ["+380441234567"]
    assert upgrade_lines(caplog.records) == [f"database {db} upgraded from schema 5 to {CODE_SCHEMA}"]
    assert [r.levelno for r in caplog.records if "upgraded" in r.getMessage()] == [logging.WARNING]
    with Store.open(db) as store:
        assert store.schema_version() == list(MIGRATION_NAMES)
    caplog.clear()
    ok(invoke("--db", db, "number", "list"))
    Store.open(tmp_path / "fresh.db").close()           # schema 0: created silently
    assert upgrade_lines(caplog.records) == []


def test_the_upgrade_line_reaches_the_cli_s_stderr(tmp_path: Path) -> None:
    db = old_db(tmp_path / "old.db", before="m005_accounts_and_billing")
    env = {k: v for k, v in os.environ.items() if k not in ("VPBX_CONFIG", "VPBX_DB")}
    proc = subprocess.run([sys.executable, "-m", "vpbx.cli", "--db", str(db), "number", "list", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, env=dict(env, PYTHONPATH=str(ROOT)),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [n["number"] for n in json.loads(proc.stdout)] == ["+380441234567"]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"database {db} upgraded from schema 4 to {CODE_SCHEMA}"), lines


def test_a_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    Store.open(db).close()
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                    "VALUES ('vpbx', 'm099_from_the_future', '2027-01-01')")
        con.execute("CREATE TABLE future (x)")
    con.close()
    before = tables(db)
    line = error_line(invoke("--db", db, "number", "list"), str(db), "newer", "upgrade vpbx")
    assert f"schema {CODE_SCHEMA + 1}" in line
    assert tables(db) == before


def test_restore_migrates_an_older_archive(src: Install, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    archive = tmp_path / "b.tar.gz"
    backup(src, archive)
    old = old_db(tmp_path / "old.db").read_bytes()

    def schema5(doc: dict[str, Any]) -> None:
        doc["schema_version"] = 5
        doc["schema_migrations"] = list(MIGRATION_NAMES[:5])
        doc["files"] = [r for r in doc["files"] if not r["path"].startswith("documents/")]

    older = rewrite(archive, tmp_path / "old.tar.gz",
                    lambda items: [(i, d) for i, d in replace_member(items, "vpbx.db", old, schema5)
                                   if not i.name.startswith("documents/")])
    caplog.set_level(logging.WARNING, logger="vpbx")
    dest = tmp_path / "dest"
    result = ok(invoke("restore", older, "--dir", dest, "--sounds-dir", tmp_path / "s", "--json"))
    assert json.loads(result.stdout)["schema_version"] == {"archive": 5, "restored": CODE_SCHEMA}
    assert upgrade_lines(caplog.records) == [f"database {dest / 'vpbx.db'} upgraded from schema 5 to {CODE_SCHEMA}"]
    with Store.open(dest / "vpbx.db") as store:
        assert store.schema_version() == list(MIGRATION_NAMES)
        assert [n.number for n in store.numbers.search()] == ["+380441234567"]


def test_restore_refuses_a_newer_schema(src: Install, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    backup(src, archive)

    def newer(doc: dict[str, Any]) -> None:
        doc["schema_version"] = CODE_SCHEMA + 1
        doc["schema_migrations"] = [*MIGRATION_NAMES, "m099_from_the_future"]
        doc["vpbx_version"] = "9.0.0"

    claimed = rewrite(archive, tmp_path / "newer.tar.gz", lambda items: with_manifest(items, newer))
    dest = tmp_path / "dest"
    error_line(invoke("restore", claimed, "--dir", dest), "vpbx 9.0.0", f"schema {CODE_SCHEMA + 1}", "upgrade vpbx")
    assert not dest.exists()

    # a manifest that hides it: the database itself is newer; refused as well, nothing left behind
    future = tmp_path / "future.db"
    shutil.copy(src.db, future)
    with sqlite3.connect(future) as con:
        con.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                    "VALUES ('vpbx', 'm099_from_the_future', '2027-01-01')")
    con.close()
    hidden = rewrite(archive, tmp_path / "hidden.tar.gz",
                     lambda items: replace_member(items, "vpbx.db", future.read_bytes()))
    sounds = tmp_path / "sounds"
    error_line(invoke("restore", hidden, "--dir", dest, "--sounds-dir", sounds), "newer", "upgrade vpbx")
    assert not dest.exists() and not sounds.exists()


# ---- real Asterisk: backups while `vpbx serve` writes call records --------------------------------------------
class Serve:
    """`vpbx serve` as a subprocess, ready once Asterisk lists its Stasis app (whatever its log format)."""

    def __init__(self, asterisk: Any, log_path: Path) -> None:
        with open(log_path, "ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "vpbx.cli", "--config", str(asterisk.config_path),
                                          "serve"], stdout=fh, stderr=fh, cwd=ROOT,
                                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
        app = asterisk.cfg.ari.app
        deadline = time.monotonic() + 30
        while app not in asterisk.cli("ari show apps").split():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"vpbx serve never registered app {app}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.mark.asterisk
@pytest.mark.timeout(600)
def test_online_backups_while_calls_are_written(asterisk: Any, carrier: str,
                                                sipp: Any, tmp_path: Path) -> None:
    """Calls come in from the carrier trunk (loopback) to a number that answers and hangs up; while they are
    written, `vpbx backup` runs 5 times. Each archive restores into a fresh dir holding every call record committed
    before its backup began and none the live database did not have after it ended."""

    number = _unique_number()
    asterisk.vpbx("number", "add", number, "--channels", "50")
    asterisk.vpbx("prompt", "add", "backup-beep", str(wav(tmp_path / "beep.wav", seconds=0.3)))
    asterisk.vpbx("number", "route", number, "hangup", "--greeting", "backup-beep")
    asterisk.vpbx("reload")
    engine = Serve(asterisk, tmp_path / "engine.log")
    stop = threading.Event()
    placed: list[Any] = []
    answered: list[bool] = []
    last: list[str] = []

    def caller() -> None:        # one short call after another, several at a time, until the backups are done
        while not stop.is_set():
            batch = [sipp.uac(number, from_user="+380671112233", scenario="uac_remote_bye.xml", timeout_s=20)
                     for _ in range(4)]
            placed.extend(batch)
            results = [call.wait(30) for call in batch]
            answered.extend(r.final_response("INVITE") == 200 for r in results)
            last[:] = [r.describe() for r in results]
            if not any(answered[-len(batch):]):
                time.sleep(0.5)        # failing calls: do not hammer Asterisk; the asserts below report it

    def committed() -> set[str]:
        con = sqlite3.connect(f"file:{asterisk.cfg.db}?mode=ro", uri=True, timeout=30)
        try:
            return {r[0] for r in con.execute("SELECT call_id FROM calls WHERE number = ? AND ended_at IS NOT NULL",
                                              [number])}
        finally:
            con.close()

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    rounds: list[tuple[Path, set[str], set[str]]] = []
    try:
        deadline = time.monotonic() + 60
        while len(committed()) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        for i in range(5):
            archive = tmp_path / f"backup-{i}.tar.gz"
            before = committed()              # every call record committed before the backup began
            asterisk.vpbx("backup", str(archive))
            after = committed()
            rounds.append((archive, before, after))
            time.sleep(0.7)
    finally:
        stop.set()
        thread.join(90)
        engine.stop()
        if channels_left(asterisk):
            asterisk.cli("channel request hangup all")

    # calls really were in progress: records kept being written across the backups (not an idle database)
    assert sum(answered) >= 12, f"only {sum(answered)} of {len(answered)} calls were answered; last: {last[:1]}"
    assert rounds[-1][2] - rounds[0][1], "no call records were written during the backups"
    for i, (_a, before, after) in enumerate(rounds):
        print(f"backup {i}: {len(before)} call records committed before it began, {len(after)} after it ended")
    grew = sum(1 for (_a, before, after) in rounds if after - before)
    assert grew >= 2, f"only {grew} of {len(rounds)} backups overlapped a call record being written"
    for i, (archive, before, after) in enumerate(rounds):
        dest = tmp_path / f"restored-{i}"
        sounds = tmp_path / f"sounds-{i}"
        proc = subprocess.run([sys.executable, "-m", "vpbx.cli", "restore", str(archive), "--dir", str(dest),
                               "--sounds-dir", str(sounds)], capture_output=True, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
        assert proc.returncode == 0, proc.stderr
        cli = [sys.executable, "-m", "vpbx.cli", "--config", str(dest / "vpbx.toml")]
        check = subprocess.run([*cli, "account", "check"], capture_output=True, text=True, cwd=ROOT, timeout=60,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert check.returncode == 0 and check.stdout.startswith("OK"), check.stdout + check.stderr
        listed = subprocess.run([*cli, "calls", "list", "--number", number, "--limit", "100000", "--json"],
                                capture_output=True, text=True, cwd=ROOT, timeout=60,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert listed.returncode == 0, listed.stderr
        rows = {r["call_id"]: r for r in json.loads(listed.stdout)}
        missing = before - {cid for cid, r in rows.items() if r["ended_at"]}
        assert not missing, f"backup {i}: {len(missing)} call records committed before it began are missing"
        # nothing from after the backup ended, and the copy is one instant: no record the live DB never had
        assert {cid for cid, r in rows.items() if r["ended_at"]} <= after
        with sqlite3.connect(dest / "vpbx.db") as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
