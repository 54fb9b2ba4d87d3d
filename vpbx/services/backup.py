"""Backups and restores of a whole install: one tar.gz archive holding the database, the config, the user prompts,
the end users' documents, the voicemail spool and a manifest.

Rules:
- The database is copied online with SQLite's backup API (`Store.backup_to`): one consistent snapshot while
  `vpbx serve` keeps writing; every transaction committed before the backup began is in it.
- The archive holds secrets (the config, SIP passwords in the database): it is written mode 0600, to a temp file in
  its own directory, then renamed; an existing FILE is replaced only with force.
- Archive layout (regular files only, no directories, links or devices):

      manifest.json                 format, vpbx version, schema version, created time, every file's size and sha256
      vpbx.db                       the database (rollback-journal mode, self-contained)
      vpbx.toml                     the config as it was
      prompts/<lang>/<name>.wav     <sounds dir>/<lang>/vpbx/<name>.wav (uploaded and built-in prompts)
      documents/<path>              <db dir>/documents/<path> (recorded in table documents)
      voicemail-spool/<name>.wav    messages not yet e-mailed

- A restore reads the whole archive before it writes anything: every member must be a regular file named in the
  manifest with its size and sha256, under a plain relative name; a schema newer than this code's is refused. Then it
  stages everything (a temp dir in the target directory, temp files in the sounds dir), migrates the staged database
  (an older schema) and moves the pieces into place, the config last; a failure undoes what was moved. Existing
  config, database, documents or different prompts are replaced only with force.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import tarfile
import tempfile
import tomllib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from vpbx import __version__
from vpbx.config import Config, load_config, make_dirs, shown
from vpbx.domain import validation
from vpbx.domain.errors import ConfigError, ConflictError, ValidationError
from vpbx.services import prompts
from vpbx.services.outbox import SPOOL_DIR_NAME
from vpbx.storage.store import CODE_SCHEMA, MIGRATION_NAMES, Store

log = logging.getLogger(__name__)

FORMAT = "vpbx-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_NAME = "vpbx.db"
CONFIG_NAME = "vpbx.toml"
DOCUMENTS = "documents"
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_MEMBERS = 200_000
CHUNK = 1024 * 1024
# one component of a member name: no leading dot (so no `.`, `..`, hidden files), no separators, no controls
_PART = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,200}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Entry:
    """One file of an archive: its member name, where it comes from (backup) and what the manifest says."""
    name: str
    size: int
    sha256: str
    source: Path | None = None
    document_id: int | None = None


# ------------------------------------------------------------------------------------------------------------- backup

def backup(store: Store, cfg: Config, target: Path, force: bool = False) -> dict[str, Any]:
    """Write the archive `target` (see the module's rules); returns what it holds."""
    target = Path(target)
    if cfg.path is None or not cfg.path.is_file():
        raise ConfigError("backup needs the config file (it holds the secrets to restore); point --config or "
                          "VPBX_CONFIG at vpbx.toml")
    if target.is_dir():
        raise ValidationError(f"backup file {shown(target)} is a directory; give a file name such as vpbx.tar.gz")
    if not target.parent.is_dir():
        raise ValidationError(f"directory {shown(target.parent)} of backup file {shown(target)} does not exist; "
                              f"create it first")
    if (target.exists() or target.is_symlink()) and not force:
        raise ConflictError(f"backup file {shown(target)} already exists; choose another FILE or add --force to "
                            f"replace it")
    db_path = store.database_path()
    if db_path is None:
        raise ValidationError("an in-memory database cannot be backed up; give a database file (--db)")
    created = datetime.now(UTC).replace(microsecond=0)
    try:
        work = Path(tempfile.mkdtemp(prefix=".vpbx-backup-", dir=target.parent))   # mode 0700
    except OSError as exc:
        raise ValidationError(f"cannot write in {shown(target.parent)} ({exc.strerror}); choose another FILE") from None
    try:
        snapshot = work / DB_NAME
        schema = store.backup_to(snapshot)          # first: the instant the archive stands for
        with Store.open_readonly(snapshot) as snap:
            documents = snap.shop.list_documents()
        entries = [_entry(DB_NAME, snapshot), _entry(CONFIG_NAME, cfg.path)]
        entries += _prompt_entries(cfg.asterisk_sounds_dir)
        entries += _document_entries(documents, db_path.resolve().parent / DOCUMENTS)
        entries += _spool_entries(db_path.resolve().parent / SPOOL_DIR_NAME)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "vpbx_version": __version__,
            "schema_version": schema, "schema_migrations": list(MIGRATION_NAMES[:schema]),
            "created_at": created.isoformat(),
            "source": {"config": str(cfg.path), "db": str(db_path), "sounds_dir": str(cfg.asterisk_sounds_dir)},
            "files": [_manifest_row(e) for e in entries],
        }
        _write_archive(target, manifest, entries, created, force)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kinds = [e.name.split("/", 1)[0] for e in entries]
    return {"file": str(target), "created_at": manifest["created_at"], "vpbx_version": __version__,
            "schema_version": schema, "files": len(entries), "bytes": target.stat().st_size,
            "prompts": kinds.count("prompts"), "documents": kinds.count(DOCUMENTS),
            "voicemail_spool": kinds.count(SPOOL_DIR_NAME)}


def _manifest_row(e: Entry) -> dict[str, Any]:
    row: dict[str, Any] = {"path": e.name, "size": e.size, "sha256": e.sha256}
    if e.document_id is not None:
        row["document_id"] = e.document_id
    return row


def _entry(name: str, source: Path, document_id: int | None = None) -> Entry:
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return Entry(name, size, digest.hexdigest(), source, document_id)


def _prompt_entries(sounds_dir: Path) -> list[Entry]:
    out = []
    for p in prompts.list_prompts(sounds_dir):
        if not _PART.fullmatch(p["language"]):
            continue
        source = Path(sounds_dir) / p["language"] / prompts.SUBDIR / f"{p['name']}.wav"
        if source.is_file():
            out.append(_entry(f"prompts/{p['language']}/{p['name']}.wav", source))
    return out


def _document_entries(documents: list[dict[str, Any]], root: Path) -> list[Entry]:
    out = []
    for doc in documents:
        source = Path(doc["path"])
        if not source.is_file():
            log.warning("document %s of number %s: its file %s is missing; it is not in the backup", doc["id"],
                        doc["number"], shown(source))
            continue
        try:
            rel = source.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = ""
        if not _plain_name(rel, 2):
            rel = f"other/{doc['id']}-{re.sub(r'[^A-Za-z0-9._-]', '_', source.name).lstrip('.')[-80:] or 'document'}"
        out.append(_entry(f"{DOCUMENTS}/{rel}", source, document_id=int(doc["id"])))
    return out


def _spool_entries(spool: Path) -> list[Entry]:
    if not spool.is_dir():
        return []
    return [_entry(f"{SPOOL_DIR_NAME}/{f.name}", f) for f in sorted(spool.iterdir())
            if f.is_file() and not f.is_symlink() and _PART.fullmatch(f.name)]


def _write_archive(target: Path, manifest: dict[str, Any], entries: list[Entry], created: datetime,
                   force: bool) -> None:
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ValidationError(f"cannot write backup file {shown(target)} ({exc.strerror}); choose another FILE"
                              ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                data = json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"
                tar.addfile(_info(MANIFEST, len(data), created), io.BytesIO(data))
                for e in entries:
                    assert e.source is not None
                    with open(e.source, "rb") as src:
                        tar.addfile(_info(e.name, e.size, created), _Checked(src, e))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        if force:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)      # never replaces: a FILE that appeared meanwhile is kept
            except FileExistsError:
                raise ConflictError(f"backup file {shown(target)} already exists; choose another FILE or add "
                                    f"--force to replace it") from None
            tmp.unlink()
        _fsync_dir(target.parent)
    except OSError as exc:
        raise ValidationError(f"cannot write backup file {shown(target)} ({exc.strerror or exc}); check the disk "
                              f"and choose another FILE") from None
    finally:
        tmp.unlink(missing_ok=True)


def _info(name: str, size: int, created: datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(created.timestamp())
    info.type = tarfile.REGTYPE
    return info


class _Checked(io.RawIOBase):
    """A source file read into the archive, checked against the size and sha256 hashed a moment before: a file that
    changed in between (nothing vpbx writes changes in place) fails the backup instead of making a wrong manifest."""

    def __init__(self, src: IO[bytes], entry: Entry) -> None:
        self.src, self.entry, self.digest, self.count = src, entry, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.src.read(size)
        self.digest.update(data)
        self.count += len(data)
        if (self.count == self.entry.size and self.digest.hexdigest() != self.entry.sha256) or \
                self.count > self.entry.size:
            raise ConflictError(f"{shown(self.entry.source or self.entry.name)} changed while it was being backed "
                                f"up; run `vpbx backup` again")
        return data


# ------------------------------------------------------------------------------------------------------------ restore

@dataclass(frozen=True)
class Plan:
    """What an archive holds, checked: the manifest and every entry."""
    manifest: dict[str, Any]
    entries: list[Entry]
    config_text: str


def restore(archive: Path, directory: Path, sounds_dir: Path | None = None, force: bool = False) -> dict[str, Any]:
    """Restore `archive` into `directory` (see the module's rules); returns what was restored."""
    archive, directory = Path(archive), Path(directory).absolute()
    plan = read_archive(archive)
    config = tomllib.loads(plan.config_text)
    sounds = Path(sounds_dir).absolute() if sounds_dir is not None else \
        Path(config.get("asterisk", {}).get("sounds_dir", str(Config().asterisk_sounds_dir)))
    by_kind = _by_kind(plan.entries)
    config_path, db_path = directory / CONFIG_NAME, directory / DB_NAME
    prompt_targets = {e.name: sounds / e.name.split("/")[1] / prompts.SUBDIR / e.name.split("/")[2]
                      for e in by_kind["prompts"]}
    _refuse_overwrites(directory, config_path, db_path, prompt_targets, plan, force, sounds_dir is not None)

    created = not directory.exists()
    try:
        make_dirs(directory)
        work = Path(tempfile.mkdtemp(prefix=".vpbx-restore-", dir=directory))
    except OSError as exc:
        raise ValidationError(f"cannot write in {shown(directory)} ({exc.strerror}); choose another --dir") from None
    staged_prompts: list[tuple[Path, Path]] = []        # (temp file beside the prompt, the prompt)
    placed_prompts: list[tuple[Path, Path | None]] = []  # (the prompt, its previous audio kept beside it)
    moved: list[tuple[Path, Path | None, Path]] = []    # (placed, the file it replaced kept aside, staged source)
    try:
        paths = _extract(archive, plan, work)
        doc_paths = {e.document_id: str(directory / e.name) for e in by_kind[DOCUMENTS] if e.document_id is not None}
        with Store.open(work / DB_NAME, shown_as=db_path) as store:       # an older schema is migrated here
            if doc_paths:
                store.shop.move_documents(doc_paths)
        (work / CONFIG_NAME).unlink()          # checked above; written again, pointing at the restored files
        _write_config(work / CONFIG_NAME, plan.config_text, db_path, sounds)
        load_config(str(work / CONFIG_NAME))       # the restored config reads back
        for e in by_kind["prompts"]:
            staged_prompts.append((_stage_prompt(paths[e.name], prompt_targets[e.name]), prompt_targets[e.name]))
        aside = work / ".replaced"
        aside.mkdir(mode=0o700)
        pieces = [DOCUMENTS, SPOOL_DIR_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", DB_NAME, CONFIG_NAME]
        for name in pieces:                                     # the config last: it makes the install
            staged, final = work / name, directory / name
            if not staged.exists() and not final.exists() and not final.is_symlink():
                continue
            kept = None
            if final.exists() or final.is_symlink():
                kept = aside / name
                os.rename(final, kept)
            moved.append((final, kept, staged))
            if staged.exists():
                os.rename(staged, final)
        for tmp, final in staged_prompts:
            old = _keep_aside(final)
            try:
                os.replace(tmp, final)
            except BaseException:
                if old is not None:
                    old.unlink(missing_ok=True)      # `final` still holds its own audio
                raise
            placed_prompts.append((final, old))
        _fsync_dir(directory)
    except BaseException as exc:
        for tmp, _final in staged_prompts:
            tmp.unlink(missing_ok=True)
        for final, old in reversed(placed_prompts):
            with contextlib.suppress(OSError):
                if old is not None:
                    os.replace(old, final)
                else:
                    final.unlink(missing_ok=True)
        for final, kept, staged in reversed(moved):
            with contextlib.suppress(OSError):
                if final.exists() or final.is_symlink():
                    os.rename(final, staged)
                if kept is not None:
                    os.rename(kept, final)
        shutil.rmtree(work, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()
        if isinstance(exc, OSError):
            raise ValidationError(f"cannot restore {shown(archive)} into {shown(directory)} "
                                  f"({exc.strerror or exc}); nothing was changed, check the disk and permissions"
                                  ) from None
        raise
    for _final, old in placed_prompts:
        if old is not None:
            old.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    m = plan.manifest
    return {"dir": str(directory), "config": str(config_path), "db": str(db_path), "sounds_dir": str(sounds),
            "created_at": m["created_at"], "vpbx_version": m["vpbx_version"],
            "schema_version": {"archive": m["schema_version"], "restored": CODE_SCHEMA},
            "prompts": len(by_kind["prompts"]), "documents": len(by_kind[DOCUMENTS]),
            "voicemail_spool": len(by_kind[SPOOL_DIR_NAME])}


def _by_kind(entries: list[Entry]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {"prompts": [], DOCUMENTS: [], SPOOL_DIR_NAME: []}
    for e in entries:
        head = e.name.split("/", 1)[0]
        if head in out:
            out[head].append(e)
    return out


def _refuse_overwrites(directory: Path, config_path: Path, db_path: Path, prompt_targets: dict[str, Path],
                       plan: Plan, force: bool, own_sounds_dir: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise ValidationError(f"--dir {shown(directory)} is not a directory; give a directory for the restored "
                              f"install")
    if force:
        return
    fix = "restore into a fresh --dir, or add --force to replace that install (stop `vpbx serve` first)"
    for path in (config_path, db_path, db_path.with_name(f"{DB_NAME}-wal")):
        if path.exists() or path.is_symlink():
            raise ConflictError(f"{shown(path)} already exists; {fix}")
    for name in (DOCUMENTS, SPOOL_DIR_NAME):
        folder = directory / name
        if folder.is_symlink() or (folder.exists() and (not folder.is_dir() or any(folder.iterdir()))):
            raise ConflictError(f"{shown(folder)} already exists and is not empty; {fix}")
    wanted = {e.name: e for e in plan.entries}
    for name, target in prompt_targets.items():
        if (target.exists() or target.is_symlink()) and _sha256_of(target) != wanted[name].sha256:
            other = "" if own_sounds_dir else "restore with --sounds-dir DIR to put the prompts elsewhere, or "
            raise ConflictError(f"prompt {shown(target)} already exists with other audio; {other}add --force to "
                                f"replace it")


def _sha256_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def read_archive(archive: Path) -> Plan:
    """Read and check the whole archive without writing anything: ValidationError (naming the archive and what is
    wrong) for anything but a vpbx backup this code can restore."""
    bad = f"archive {shown(archive)}"
    if not archive.is_file():
        raise ValidationError(f"{bad} not found or not a regular file; give the file `vpbx backup` wrote")
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = _members(tar, bad)
            raw = _read_member(tar, members[MANIFEST], MAX_MANIFEST_BYTES, bad)
            manifest = _manifest(raw, bad)
            entries = _entries(manifest, bad)
            names = {e.name for e in entries}
            extra = sorted(set(members) - names - {MANIFEST})
            if extra:
                raise ValidationError(f"{bad} holds {shown(extra[0])}, which its manifest does not list; it is not "
                                      f"a backup vpbx wrote, refusing it")
            missing = sorted(names - set(members))
            if missing:
                raise ValidationError(f"{bad} lacks {shown(missing[0])}, which its manifest lists; the archive is "
                                      f"incomplete, use another backup")
            config_text = ""
            for e in entries:       # every checksum, before anything is written
                info = members[e.name]
                if info.size != e.size:
                    raise ValidationError(f"{bad}: {shown(e.name)} is {info.size} bytes, its manifest says {e.size}; "
                                          f"the archive is damaged, use another backup")
                digest, data = _hash_member(tar, info, e.name == CONFIG_NAME)
                if digest != e.sha256:
                    raise ValidationError(f"{bad}: {shown(e.name)} fails its sha256 check; the archive is damaged, "
                                          f"use another backup")
                if e.name == CONFIG_NAME:
                    config_text = _config_text(data, bad)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ValidationError(f"{bad} is not a readable tar.gz ({exc}); give the file `vpbx backup` wrote") from None
    return Plan(manifest, entries, config_text)


def _members(tar: tarfile.TarFile, bad: str) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for count, info in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise ValidationError(f"{bad} holds more than {MAX_MEMBERS} files; it is not a vpbx backup")
        if not info.isreg() or info.issparse():
            kind = "a symlink" if info.issym() else "a hard link" if info.islnk() else "a directory" if info.isdir() \
                else "a device or special file"
            raise ValidationError(f"{bad} holds {shown(info.name)}, {kind}; a vpbx backup holds regular files only, "
                                  f"refusing it")
        if info.name != MANIFEST and not _plain_name(info.name, 4):
            raise ValidationError(f"{bad} holds the member name {shown(info.name)} (absolute, `..`, hidden or not "
                                  f"plain); a vpbx backup never does, refusing it")
        if info.name in members:
            raise ValidationError(f"{bad} holds {shown(info.name)} twice; refusing it")
        members[info.name] = info
    if MANIFEST not in members:
        raise ValidationError(f"{bad} has no {MANIFEST}; it is not a vpbx backup (made by `vpbx backup`)")
    return members


def _plain_name(name: str, depth: int) -> bool:
    parts = name.split("/")
    return 0 < len(parts) <= depth and all(_PART.fullmatch(p) for p in parts)


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, limit: int, bad: str) -> bytes:
    if info.size > limit:
        raise ValidationError(f"{bad}: {shown(info.name)} is {info.size} bytes, more than a vpbx backup's "
                              f"({limit}); refusing it")
    fh = tar.extractfile(info)
    if fh is None:
        raise ValidationError(f"{bad}: {shown(info.name)} cannot be read; use another backup")
    return fh.read(limit + 1)


def _hash_member(tar: tarfile.TarFile, info: tarfile.TarInfo, keep: bool) -> tuple[str, bytes]:
    fh = tar.extractfile(info)
    assert fh is not None          # a regular member
    digest = hashlib.sha256()
    kept = bytearray()
    while chunk := fh.read(CHUNK):
        digest.update(chunk)
        if keep:
            kept += chunk
    return digest.hexdigest(), bytes(kept)


def _manifest(raw: bytes, bad: str) -> dict[str, Any]:
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValidationError(f"{bad}: {MANIFEST} is not JSON; the archive is damaged or not a vpbx backup") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValidationError(f"{bad}: {MANIFEST} is not a vpbx backup manifest; give the file `vpbx backup` wrote")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValidationError(f"{bad}: {MANIFEST} has no valid format_version; the archive is damaged")
    made_by = shown(str(manifest.get("vpbx_version", "?")))
    if version > FORMAT_VERSION:
        raise ConflictError(f"{bad} was made by vpbx {made_by} in backup format {version}, newer than this vpbx "
                            f"{__version__} reads ({FORMAT_VERSION}); upgrade vpbx to restore it")
    schema, applied = manifest.get("schema_version"), manifest.get("schema_migrations")
    if not isinstance(schema, int) or isinstance(schema, bool) or not isinstance(applied, list) \
            or len(applied) != schema or not all(isinstance(n, str) for n in applied):
        raise ValidationError(f"{bad}: {MANIFEST} has no valid schema_version; the archive is damaged")
    if schema > CODE_SCHEMA or applied != list(MIGRATION_NAMES[:schema]):
        raise ConflictError(f"{bad} was made by vpbx {made_by} with database schema {schema}, newer than this vpbx "
                            f"{__version__} reads (schema {CODE_SCHEMA}); upgrade vpbx to restore it")
    if not isinstance(manifest.get("created_at"), str) or not isinstance(manifest.get("files"), list):
        raise ValidationError(f"{bad}: {MANIFEST} lacks created_at or files; the archive is damaged")
    return manifest


def _entries(manifest: dict[str, Any], bad: str) -> list[Entry]:
    entries: list[Entry] = []
    seen: set[str] = set()
    for row in manifest["files"]:
        if not isinstance(row, dict):
            raise ValidationError(f"{bad}: {MANIFEST} has a file entry that is not an object; the archive is damaged")
        name, size, sha, doc = row.get("path"), row.get("size"), row.get("sha256"), row.get("document_id")
        if not (isinstance(name, str) and _allowed(name)):
            raise ValidationError(f"{bad}: {MANIFEST} lists {shown(str(name))}, which is no file a vpbx backup "
                                  f"holds; refusing it")
        if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0
                and isinstance(sha, str) and _SHA256.fullmatch(sha)
                and (doc is None or (isinstance(doc, int) and not isinstance(doc, bool)))):
            raise ValidationError(f"{bad}: {MANIFEST} entry {shown(name)} lacks a valid size or sha256; the archive "
                                  f"is damaged")
        if name in seen:
            raise ValidationError(f"{bad}: {MANIFEST} lists {shown(name)} twice; refusing it")
        seen.add(name)
        entries.append(Entry(name, size, sha, None, doc if name.startswith(DOCUMENTS + "/") else None))
    for needed in (DB_NAME, CONFIG_NAME):
        if needed not in seen:
            raise ValidationError(f"{bad}: {MANIFEST} does not list {needed}; it is not a complete vpbx backup")
    return entries


def _allowed(name: str) -> bool:
    parts = name.split("/")
    if not _plain_name(name, 4):
        return False
    if len(parts) == 1:
        return name in (DB_NAME, CONFIG_NAME)
    head = parts[0]
    if head == "prompts":
        return len(parts) == 3 and parts[2].endswith(".wav") and bool(validation.PROMPT_RE.match(parts[2][:-4]))
    if head == DOCUMENTS:
        return len(parts) in (2, 3, 4)
    return head == SPOOL_DIR_NAME and len(parts) == 2


def _config_text(data: bytes, bad: str) -> str:
    try:
        text = data.decode("utf-8")
        config = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise ValidationError(f"{bad}: {CONFIG_NAME} is not a valid TOML config; the archive is damaged") from None
    sounds = config.get("asterisk", {}).get("sounds_dir", "") if isinstance(config.get("asterisk"), dict) else None
    if not isinstance(sounds, str) or not isinstance(config.get("vpbx", {}), dict):
        raise ValidationError(f"{bad}: {CONFIG_NAME} has an invalid [vpbx] or [asterisk] section; the archive is "
                              f"damaged")
    return text


def _extract(archive: Path, plan: Plan, work: Path) -> dict[str, Path]:
    """Write every entry under `work` (files 0600, dirs 0700), checking size and sha256 again as it is written."""
    wanted = {e.name: e for e in plan.entries}
    out: dict[str, Path] = {}
    with tarfile.open(archive, mode="r:gz") as tar:
        for info in tar:
            entry = wanted.get(info.name)
            if entry is None:
                continue
            dest = work / entry.name
            for parent in reversed(dest.relative_to(work).parents[:-1]):
                (work / parent).mkdir(mode=0o700, exist_ok=True)
            src = tar.extractfile(info)
            assert src is not None
            digest = hashlib.sha256()
            with _new_file(dest, 0o600) as fh:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            if digest.hexdigest() != entry.sha256:
                raise ValidationError(f"archive {shown(archive)} changed while it was being restored "
                                      f"({shown(entry.name)}); restore it again")
            out[entry.name] = dest
    if set(out) != set(wanted):
        raise ValidationError(f"archive {shown(archive)} changed while it was being restored; restore it again")
    return out


@contextlib.contextmanager
def _new_file(path: Path, mode: int) -> Iterator[IO[bytes]]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        yield fh


def _write_config(path: Path, text: str, db_path: Path, sounds: Path) -> None:
    """The archived config with [vpbx] db pointing at the restored database and [asterisk] sounds_dir at where the
    prompts went; every other line (comments, secrets) as it was."""
    import tomlkit

    doc = tomlkit.parse(text)
    for section in ("vpbx", "asterisk"):
        if section not in doc:
            doc.add(section, tomlkit.table())
    doc["vpbx"]["db"] = str(db_path)
    doc["asterisk"]["sounds_dir"] = str(sounds)
    with _new_file(path, 0o600) as fh:
        fh.write(tomlkit.dumps(doc).encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _stage_prompt(source: Path, target: Path) -> Path:
    """Copy a restored prompt next to its final place (a temp name, mode 0644: Asterisk reads it)."""
    try:
        make_dirs(target.parent)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        with _new_file(tmp, 0o644) as fh, open(source, "rb") as src:
            shutil.copyfileobj(src, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
    except OSError as exc:
        raise ValidationError(f"cannot write prompt {shown(target)} ({exc.strerror}); give a writable "
                              f"--sounds-dir") from None
    return tmp


def _keep_aside(path: Path) -> Path | None:
    """A hard link to an existing prompt beside it (a hidden name), so a failed restore can put it back."""
    if not path.exists():
        return None
    old = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old")
    try:
        os.link(path, old)
    except OSError:
        shutil.copy2(path, old)
    return old


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
